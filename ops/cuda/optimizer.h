#pragma once
// CUDA twins of ops/cpu/optimizer.h's AdamW and sum of squares (the global gradient norm). Device
// pointers; plain C++ can include this header.
#include <cstdint>

#include "ops/cpu/optimizer.h"
#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

using AdamWHyper = cpu::AdamWHyper;
using cpu::AdamWScalars;
using cpu::adamw_scalars;

// PyTorch's AdamW, one fused pass over n elements (one parameter tensor, or a flat buffer of many
// that share the hyper-parameters — weight decay included, so decayed and non-decayed parameters
// take one call each). The per-step scalars are formed in double on the host exactly as the CPU
// kernel forms them, and the kernel does the CPU's operations in the CPU's order with no fused
// multiply-add. It matches the CPU to an ulp or so, not bit for bit: the CPU build (-march=native)
// lets the compiler contract its multiply-adds into FMAs.
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& hyper,
                  cudaStream_t stream);

// One parameter tensor of a multi-tensor step: device pointers, its length, and whether the
// weight-decayed hyper-parameters apply to it.
struct AdamWTensor {
  float* param;
  const float* grad;
  float* m;
  float* v;
  int64_t n;
  bool decay;
};

// AdamW over all parameters in a few launches instead of one per tensor (multi-tensor apply): the
// pointers travel in the kernel's arguments, kMultiTensorBatch tensors a launch, and each block
// updates one 16 Ki-element chunk of one tensor. Each element gets exactly adamw_update's
// arithmetic (bit-identical), with `decayed` or `plain` as the tensor's `decay` says.
inline constexpr int kMultiTensorBatch = 48;
void adamw_update_many(const AdamWTensor* tensors, int count, const AdamWHyper& decayed, const AdamWHyper& plain,
                       cudaStream_t stream);

// Σ x² in double, deterministically: pass 1 runs a fixed grid of kSumOfSquaresPartials blocks, each
// writing one partial (its threads stride over x in a fixed pattern and reduce in a fixed tree), and
// pass 2 sums the partials in a fixed tree. The same bits on every run and every GPU.
inline constexpr int kSumOfSquaresPartials = 256;

// Stream-ordered form for the global norm over many tensors without a host round trip per tensor:
// *result = Σ x² (or *result += Σ x² when accumulate). result: 1 double, partials: kSumOfSquaresPartials
// doubles of scratch, both device memory.
void sum_of_squares(double* result, double* partials, const float* x, int64_t n, bool accumulate, cudaStream_t stream);

// Σ x² over many tensors, stream-ordered and deterministic, in a few launches: each block sums one
// 16 Ki-element chunk of one tensor into a partial (fixed order), then one block sums the partials
// in a fixed order into *result. partials: sum_of_squares_many_partials(...) doubles of scratch.
int64_t sum_of_squares_many_partials(const int64_t* sizes, int count);
void sum_of_squares_many(double* result, double* partials, const float* const* tensors, const int64_t* sizes,
                         int count, cudaStream_t stream);

// The twin of cpu::sum_of_squares: returns Σ x², waiting for the stream. Uses a small scratch buffer
// per device (allocated on first use, kept); `stream` must belong to the current device.
double sum_of_squares(const float* x, int64_t n, cudaStream_t stream);

}  // namespace meridian::ops::cuda

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
// multiply-add, so it matches the CPU to rounding.
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& hyper,
                  cudaStream_t stream);

// Σ x² in double, deterministically: pass 1 runs a fixed grid of kSumOfSquaresPartials blocks, each
// writing one partial (its threads stride over x in a fixed pattern and reduce in a fixed tree), and
// pass 2 sums the partials in a fixed tree. The same bits on every run and every GPU.
inline constexpr int kSumOfSquaresPartials = 256;

// Stream-ordered form for the global norm over many tensors without a host round trip per tensor:
// *result = Σ x² (or *result += Σ x² when accumulate). result: 1 double, partials: kSumOfSquaresPartials
// doubles of scratch, both device memory.
void sum_of_squares(double* result, double* partials, const float* x, int64_t n, bool accumulate, cudaStream_t stream);

// The twin of cpu::sum_of_squares: returns Σ x², waiting for the stream. Uses a small scratch buffer
// per device (allocated on first use, kept); `stream` must belong to the current device.
double sum_of_squares(const float* x, int64_t n, cudaStream_t stream);

}  // namespace meridian::ops::cuda

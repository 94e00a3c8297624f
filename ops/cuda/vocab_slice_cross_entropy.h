#pragma once
// CUDA twins of ops/cpu/vocab_slice_cross_entropy.h (same arguments, plus a stream): softmax
// cross-entropy over one slice of a vocabulary split across tensor-parallel ranks. The caller
// combines the slices' statistics (all-reduces over the group), as on the cpu:
//   m_i = max over slices of row_max,  s_i = Σ over slices of sum_exp (given m),
//   t_i = Σ over slices of target_logit,  lse_i = m_i + log s_i,  loss_i = lse_i − t_i.
// A slice holds columns [first, first + Vs_p) of the vocabulary; its first Vs are real, the rest
// padding (Vs may be 0). Element (logits, dlogits) is float or __nv_bfloat16; statistics are fp32.
// One block of 256 threads per row; sums are reduced in a fixed order (deterministic).
#include <cstdint>

#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

// row_max[i] = max_{j<Vs} logits[i, j]; −inf when Vs = 0.
template <class Element>
void vocab_slice_row_max(float* row_max, const Element* logits, int64_t N, int64_t Vs, int64_t Vs_p,
                         cudaStream_t stream);

// sum_exp[i] = Σ_{j<Vs} exp(logits[i, j] − row_max[i]) with the combined row_max.
template <class Element>
void vocab_slice_sum_exp(float* sum_exp, const Element* logits, const float* row_max, int64_t N, int64_t Vs,
                         int64_t Vs_p, cudaStream_t stream);

// target_logit[i] = logits[i, targets[i] − first] when the target is a real column of this slice,
// else 0 (ignored rows included). targets: device memory.
template <class Element>
void vocab_slice_target_logit(float* target_logit, const Element* logits, const int32_t* targets, int64_t first,
                              int64_t N, int64_t Vs, int64_t Vs_p, cudaStream_t stream);

// dlogits[i, j] += dlosses[i] · (exp(logits[i, j] − lse[i]) − [first + j == targets[i]]) for j < Vs;
// padded columns and ignored rows are left untouched.
template <class Element>
void vocab_slice_cross_entropy_backward(Element* dlogits, const float* dlosses, const Element* logits,
                                        const float* lse, const int32_t* targets, int64_t first, int64_t N,
                                        int64_t Vs, int64_t Vs_p, cudaStream_t stream);

}  // namespace meridian::ops::cuda

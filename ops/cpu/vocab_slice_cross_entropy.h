#pragma once
// Softmax cross-entropy over a vocabulary whose columns are split into slices (tensor parallelism
// keeps one slice per rank and never builds the full logits). A slice holds columns
// [first, first + Vs_p) of the whole vocabulary in rows of Vs_p floats; its first Vs columns are real
// vocabulary entries and the rest padding (Vs may be 0: a slice of padding only). Padded columns take
// no part and get no gradient, as in cross_entropy.h.
//
// Combining slices (the caller does it, e.g. with all-reduces):
//   m_i   = max over slices of row_max              (vocab_slice_row_max)
//   s_i   = Σ over slices of Σ_j exp(x_ij − m_i)    (vocab_slice_sum_exp, given m)
//   t_i   = Σ over slices of target_logit           (vocab_slice_target_logit: one slice holds it)
//   lse_i = m_i + log s_i,  loss_i = lse_i − t_i    (0 for a negative, i.e. ignored, target)
#include <cstdint>

namespace meridian::ops::cpu {

// row_max[i] = max_{j<Vs} logits[i, j]; −inf when Vs = 0.
void vocab_slice_row_max(float* row_max, const float* logits, int64_t N, int64_t Vs, int64_t Vs_p);

// sum_exp[i] = Σ_{j<Vs} exp(logits[i, j] − row_max[i]) with the combined row_max.
void vocab_slice_sum_exp(float* sum_exp, const float* logits, const float* row_max, int64_t N, int64_t Vs,
                         int64_t Vs_p);

// target_logit[i] = logits[i, targets[i] − first] when the target is a real column of this slice,
// else 0 (ignored rows included).
void vocab_slice_target_logit(float* target_logit, const float* logits, const int32_t* targets, int64_t first,
                              int64_t N, int64_t Vs, int64_t Vs_p);

// dlogits[i, j] += dlosses[i] · (exp(logits[i, j] − lse[i]) − [first + j == targets[i]]) for j < Vs,
// with the combined lse; padded columns and ignored rows are left untouched.
void vocab_slice_cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits,
                                        const float* lse, const int32_t* targets, int64_t first, int64_t N,
                                        int64_t Vs, int64_t Vs_p);

}  // namespace meridian::ops::cpu

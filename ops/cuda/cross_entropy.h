#pragma once
// Fused softmax + cross-entropy over a padded vocabulary on the GPU: the CUDA twin of
// ops/cpu/cross_entropy.h (same arguments, plus a stream), and the fused classifier that does the
// forward and backward of a row in one kernel. Logits rows have Vp columns, of which only the first
// V are real: padded columns take no part in the softmax and their gradient is left untouched
// (zero when the gradient buffer started at zero). Probabilities are never written anywhere.
//
// Element (the logits and dlogits storage) is float or __nv_bfloat16; arithmetic, losses, lse and
// dlosses are fp32. One block of 256 threads per row: an online softmax reads the row once for its
// max and sum; the gradient is written in a second read of the row.
//
// Targets: a negative target marks an ignored row (loss 0, no gradient; its lse is still written),
// as on the CPU. The CPU twin throws for a target ≥ V; the device cannot, so such a row's loss is
// NaN (visible in any loss print) and its gradient has no one-hot term.
#include <cstdint>

#include "ops/cuda/stream.h"  // cudaStream_t, __nv_bfloat16 without CUDA headers: core/ includes this

namespace meridian::ops::cuda {

// losses[i] = lse[i] − logits[i, targets[i]], lse[i] = log Σ_{j<V} exp(logits[i, j]).
template <class Element>
void cross_entropy_forward(float* losses, float* lse, const Element* logits, const int32_t* targets, int64_t N,
                           int64_t V, int64_t Vp, cudaStream_t stream);

// dlogits[i, j] += dlosses[i] · (softmax(logits[i])_j − [j == targets[i]]) for j < V.
template <class Element>
void cross_entropy_backward(Element* dlogits, const float* dlosses, const Element* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V, int64_t Vp, cudaStream_t stream);

// Both in one kernel (the training step's classifier: dlosses is known before the forward, e.g.
// 1/(B·T) for a mean loss): losses and lse as cross_entropy_forward, and dlogits as
// cross_entropy_backward. dlogits must not alias logits.
// With `overwrite`, dlogits is written instead of added to, every column of every row: the gradient
// for j < V, zero for the padded columns and for ignored rows (dlogits may start uninitialised:
// the engine's training step computes the gradient in the forward pass this way and hands it over
// without a zero-fill or a second read of the logits).
template <class Element>
void fused_classifier(float* losses, float* lse, Element* dlogits, const float* dlosses, const Element* logits,
                      const int32_t* targets, int64_t N, int64_t V, int64_t Vp, cudaStream_t stream,
                      bool overwrite = false);

}  // namespace meridian::ops::cuda

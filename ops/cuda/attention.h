#pragma once
// Causal multi-head self-attention on the GPU: the CUDA twin of ops/cpu/attention.h (same layout and
// arguments, plus a stream), flash-attention style. The forward pass tiles over keys with an online
// softmax and keeps only the per-row log-sum-exp; the backward pass recomputes the probabilities
// from q, k and that log-sum-exp. No T×T buffer exists at any time, and backward needs no scratch.
//
// Element is float or __nv_bfloat16 (storage of qkv, out, dout, dqkv); all arithmetic is fp32 and
// lse is always fp32. The head size C/NH may be anything up to 128 and T anything: tiles are masked
// at the edges. The kernels use CUDA cores (no tensor cores yet): correct first, see docs/cuda.md.
//
// Backward is deterministic: dK and dV are accumulated by a key-major kernel and dQ by a
// query-major kernel, each output element by exactly one thread in a fixed order (no atomics), at
// the price of computing the probabilities twice.
#include <cstdint>

#include "ops/cuda/stream.h"  // cudaStream_t, __nv_bfloat16 without CUDA headers: core/ includes this

namespace meridian::ops::cuda {

// Largest head size (C / NH) the kernels take.
inline constexpr int64_t kAttentionMaxHeadSize = 128;

// qkv: (B, T, 3C) laid out [q | k | v], each C = NH heads × hs contiguous channels. Scores are
// scaled by 1/√hs; query t sees keys 0…t.  out: (B, T, C).  lse: (B, NH, T), log Σ_j exp(score_tj).
template <class Element>
void attention_forward(Element* out, float* lse, const Element* qkv, int64_t B, int64_t T, int64_t C, int64_t NH,
                       cudaStream_t stream);

// dqkv (B, T, 3C) += gradient of the loss with respect to qkv, given dout (B, T, C) and the forward's
// out and lse.
template <class Element>
void attention_backward(Element* dqkv, const Element* dout, const Element* qkv, const Element* out, const float* lse,
                        int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream);

}  // namespace meridian::ops::cuda

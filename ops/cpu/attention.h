#pragma once
// Causal multi-head self-attention over a fused qkv activation, flash-attention style: forward keeps
// only the per-row log-sum-exp; backward recomputes probabilities from q, k and it. No T×T buffer
// outlives a call (per-thread scratch of at most one tile is allowed).
#include <cstdint>

namespace meridian::ops::cpu {

// qkv: (B, T, 3C) laid out [q | k | v], each C = NH heads × hs contiguous channels (head h owns
// channels h·hs … h·hs+hs−1 of each). Scores are scaled by 1/√hs; query t sees keys 0…t.
// out: (B, T, C) in the same head layout.  lse: (B, NH, T), log Σ_j exp(score_tj).
void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t C,
                       int64_t NH);

// dqkv (B, T, 3C) += gradient of the loss with respect to qkv, given dout (B, T, C) and the forward's
// out and lse.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, int64_t B, int64_t T, int64_t C, int64_t NH);

}  // namespace meridian::ops::cpu

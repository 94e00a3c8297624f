#pragma once
// Causal self-attention on tensor cores, for bf16: the per-head products S = q·kᵀ and y = P·v (and
// their backward products) run as strided-batched cuBLASLt matmuls (bf16 in, fp32 accumulate), with
// causal softmax kernels between them. Unlike the flash-style kernel (attention.h), it materialises
// the T×T probabilities P of every head: they are saved for backward in bf16, B·NH·T² elements
// (48 MiB a layer for GPT-2 124M at B = 16, T = 1024 ... times 12 heads: 403 MB). That is the trade
// llm.c made before its cuDNN path: memory for tensor-core speed.
//
// Same layout as attention.h: qkv (B, T, 3C) = [q | k | v], NH heads of hs = C/NH, scale 1/√hs,
// out (B, T, C). Scratch memory comes from the caller (sizes below), so this file allocates nothing.
#include <cstddef>
#include <cstdint>

#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

// Bytes of the probabilities saved between forward and backward (bf16, B·NH·T·T).
size_t attention_tc_probabilities_bytes(int64_t B, int64_t T, int64_t NH);
// Scratch bytes of one forward / one backward call (only during the call).
size_t attention_tc_forward_scratch_bytes(int64_t B, int64_t T, int64_t C, int64_t NH);
size_t attention_tc_backward_scratch_bytes(int64_t B, int64_t T, int64_t C, int64_t NH);

// out = attention(qkv); probabilities (B·NH, T, T) receives P (zeros above the diagonal).
void attention_tc_forward(__nv_bfloat16* out, __nv_bfloat16* probabilities, const __nv_bfloat16* qkv, void* scratch,
                          int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream);

// dqkv += ∂loss/∂qkv given dout (B, T, C) and the forward's probabilities.
void attention_tc_backward(__nv_bfloat16* dqkv, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                           const __nv_bfloat16* probabilities, void* scratch, int64_t B, int64_t T, int64_t C,
                           int64_t NH, cudaStream_t stream);

}  // namespace meridian::ops::cuda

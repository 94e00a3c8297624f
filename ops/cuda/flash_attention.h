#pragma once
// Causal self-attention for bf16 on tensor cores without a T×T buffer: FlashAttention-2 (Dao) with
// every product — q·kᵀ, P·v, and backward's k·qᵀ, v·dOᵀ, Pᵀ·dO, dSᵀ·q, q·kᵀ, dO·vᵀ, dS·k — issued as
// mma.sync m16n8k16 bf16 instructions with fp32 accumulation (mma_sync.cuh), and the scores,
// probabilities and accumulators kept in registers.
//
// Forward: a block owns 64 (or 128) queries of one head and walks the 64-key tiles up to the diagonal,
// with the online softmax in fp32 in registers; it keeps only the per-row log-sum-exp (fp32), as the
// CUDA-core kernel of attention.h does, so backward memory is O(T) per head instead of the
// B·NH·T² probabilities of attention_tensor_core.h. Backward recomputes the probabilities from q, k
// and that log-sum-exp: one key-major kernel accumulates dK and dV in registers, one query-major
// kernel dQ, each element of dqkv written by exactly one thread (deterministic, no atomics).
//
// Same layout and arguments as attention.h: qkv (B, T, 3C) = [q | k | v], NH heads of hs = C/NH,
// scores scaled by 1/√hs, query t sees keys 0…t; out (B, T, C); lse (B, NH, T) = log Σ_j exp(score).
// Requirements: hs a multiple of 16 and at most 128; qkv, out, dout and dqkv 16-byte aligned (the
// tiles are loaded 8 elements at a time). Needs sm_80 or newer (bf16 mma.sync).
//
// Rounding: P and dS are rounded to bf16 before their second products (as in every bf16 flash
// attention); all sums are fp32; out and dqkv are rounded once.
#include <cstddef>
#include <cstdint>

#include "ops/cuda/stream.h"  // cudaStream_t, __nv_bfloat16 without CUDA headers: core/ includes this

namespace meridian::ops::cuda {

// Whether the kernels take this head size (a multiple of 16, at most 128).
bool flash_attention_supports(int64_t head_size);

// Query rows per warp in the query-major kernels (the forward and backward's dQ kernel), for the calling
// thread (like set_matmul_tf32): 16 (the default; a block owns 64 queries) or 32 (128 queries: every
// B fragment a warp reads from shared memory feeds two mma instructions instead of one, as in
// FlashAttention-2's forward, for up to 255 registers a thread and 2 blocks per SM instead of 3). 32
// applies up to hs = 64; larger heads keep 16. Anything else throws std::invalid_argument. Which is
// faster is gpu_kernel_bench's to say.
void set_flash_query_rows_per_warp(int rows);
// The rows per warp the query-major kernels run with at this head size under the calling thread's setting.
int flash_query_rows_per_warp(int64_t head_size);

void flash_attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv, int64_t B, int64_t T,
                             int64_t C, int64_t NH, cudaStream_t stream);

// Scratch bytes of one backward call: D = rowsum(dO ∘ O), B·NH·T floats.
size_t flash_attention_backward_scratch_bytes(int64_t B, int64_t T, int64_t NH);

// dqkv += ∂loss/∂qkv given dout (B, T, C) and the forward's out and lse. scratch: see above. With
// overwrite, dqkv = ∂loss/∂qkv: every element is written and none read (dqkv may start uninitialised).
void flash_attention_backward(__nv_bfloat16* dqkv, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                              const __nv_bfloat16* out, const float* lse, void* scratch, int64_t B, int64_t T,
                              int64_t C, int64_t NH, cudaStream_t stream, bool overwrite = false);

}  // namespace meridian::ops::cuda

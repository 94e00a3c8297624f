#pragma once
// A check of the mma.sync fragment layout (mma_sync.cuh) on its own: the flash attention kernels rely
// on it everywhere, and a wrong register map would show there only as wrong attention. One warp runs
// the two steps those kernels chain: D = A · B (16 × 16, as two 16 × 8 accumulator tiles), then
// E = bf16(D) · F with the accumulators fed back as the A operand. tests/cuda/mma_sync_test.cpp
// compares both with the plain products. A second check covers the two ldmatrix.x4 loads of B operands
// from a tile of rows in shared memory, which the kernels use for every product: transposing (.trans,
// k along the rows: P·v and its kin) and as stored (n along the rows: q·kᵀ and its kin).
#include "ops/cuda/stream.h"  // cudaStream_t, __nv_bfloat16 without CUDA headers

namespace meridian::ops::cuda {

// a: 16 × 16, b_transposed: Bᵀ (16 × 16, row n holds column n of B), f_transposed: Fᵀ (8 × 16), all
// bf16 row-major; d: 16 × 16 and e: 16 × 8, fp32 row-major. Needs sm_80 or newer.
void mma_sync_chain(float* d, float* e, const __nv_bfloat16* a, const __nv_bfloat16* b_transposed,
                    const __nv_bfloat16* f_transposed, cudaStream_t stream);

// g = A · H and g_transposed = A · Hᵀ (16 × 16 each, fp32 row-major), a (16 × 16, m × k) and h (16 × 16)
// bf16 row-major; one warp stages H's rows in shared memory (padded, as the flash kernels do) and reads
// the B fragments of H with load_b_fragments_from_rows and those of Hᵀ with load_b_fragments_transposed.
// Needs sm_80 or newer.
void mma_sync_b_from_rows(float* g, float* g_transposed, const __nv_bfloat16* a, const __nv_bfloat16* h,
                          cudaStream_t stream);

}  // namespace meridian::ops::cuda

#include "ops/cuda/mma_sync_check.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/kernel_common.cuh"
#include "ops/cuda/mma_sync.cuh"

namespace meridian::ops::cuda {
namespace {

using bf16 = __nv_bfloat16;

// Lane (group, t)'s share of a 16 × 8 accumulator tile covering columns column0 … column0 + 7 of a
// row-major fp32 matrix of ld columns: (group, column0 + 2t, +1) and (group + 8, column0 + 2t, +1).
__device__ void store_tile(float* out, int ld, int column0, const float (&tile)[4], int group, int t) {
  out[group * ld + column0 + 2 * t] = tile[0];
  out[group * ld + column0 + 2 * t + 1] = tile[1];
  out[(group + 8) * ld + column0 + 2 * t] = tile[2];
  out[(group + 8) * ld + column0 + 2 * t + 1] = tile[3];
}

// One warp. Accumulator tile j of D covers columns 8j … 8j + 7: lane (g, t) holds D[g][8j + 2t, +1]
// and D[g + 8][8j + 2t, +1] (mma_sync.cuh), and E's single tile likewise.
__global__ void mma_sync_chain_kernel(float* d, float* e, const bf16* a, const bf16* b_transposed,
                                      const bf16* f_transposed) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  uint32_t a_fragment[4];
  detail::load_a_fragment(a_fragment, a, 16, 0, 0, lane);
  float tiles[2][4] = {};
  for (int j = 0; j < 2; ++j) {
    uint32_t b_fragment[2];
    detail::load_b_fragment_transposed(b_fragment, b_transposed, 16, 8 * j, 0, lane);
    detail::mma_bf16_m16n8k16(tiles[j], a_fragment, b_fragment);
    store_tile(d, 16, 8 * j, tiles[j], g, t);
  }
  uint32_t d_fragment[4], f_fragment[2];
  detail::a_fragment_from_accumulators(d_fragment, tiles[0], tiles[1]);
  detail::load_b_fragment_transposed(f_fragment, f_transposed, 16, 0, 0, lane);
  float product[4] = {};
  detail::mma_bf16_m16n8k16(product, d_fragment, f_fragment);
  store_tile(e, 8, 0, product, g, t);
}

// H's rows in shared memory, 8 elements of padding each (rows 16-byte aligned, as in the flash kernels).
constexpr int kPaddedRow = 16 + 8;

__global__ void mma_sync_b_from_rows_kernel(float* g, float* g_transposed, const bf16* a, const bf16* h) {
  __shared__ uint4 storage[16 * kPaddedRow * sizeof(bf16) / sizeof(uint4)];  // uint4: 16-byte aligned
  bf16* rows = reinterpret_cast<bf16*>(storage);
  const int lane = threadIdx.x, group = lane / 4, t = lane % 4;
  for (int i = lane; i < 16 * 16; i += detail::kWarpSize) rows[(i / 16) * kPaddedRow + i % 16] = h[i];
  __syncwarp();
  uint32_t a_fragment[4], b_fragments[2][2], bt_fragments[2][2];
  detail::load_a_fragment(a_fragment, a, 16, 0, 0, lane);
  detail::load_b_fragments_from_rows(b_fragments, rows, kPaddedRow, 0, 0, lane);    // B = H
  detail::load_b_fragments_transposed(bt_fragments, rows, kPaddedRow, 0, 0, lane);  // B = Hᵀ
  for (int j = 0; j < 2; ++j) {
    float tile[4] = {}, tile_transposed[4] = {};
    detail::mma_bf16_m16n8k16(tile, a_fragment, b_fragments[j]);
    detail::mma_bf16_m16n8k16(tile_transposed, a_fragment, bt_fragments[j]);
    store_tile(g, 16, 8 * j, tile, group, t);
    store_tile(g_transposed, 16, 8 * j, tile_transposed, group, t);
  }
}

}  // namespace

void mma_sync_b_from_rows(float* g, float* g_transposed, const bf16* a, const bf16* h, cudaStream_t stream) {
  mma_sync_b_from_rows_kernel<<<1, detail::kWarpSize, 0, stream>>>(g, g_transposed, a, h);
  detail::check_launch("mma_sync_b_from_rows_kernel");
}

void mma_sync_chain(float* d, float* e, const bf16* a, const bf16* b_transposed, const bf16* f_transposed,
                    cudaStream_t stream) {
  mma_sync_chain_kernel<<<1, detail::kWarpSize, 0, stream>>>(d, e, a, b_transposed, f_transposed);
  detail::check_launch("mma_sync_chain_kernel");
}

}  // namespace meridian::ops::cuda

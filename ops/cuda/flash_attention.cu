#include "ops/cuda/flash_attention.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ops/cuda/attention_shape.cuh"
#include "ops/cuda/kernel_common.cuh"

namespace meridian::ops::cuda {
namespace {

namespace wmma = nvcuda::wmma;
using bf16 = __nv_bfloat16;
using detail::allow_shared_memory;
using detail::AttentionShape;
using detail::check_attention_shape;
using detail::check_launch;
using detail::kWarpSize;
using detail::shape_text;
using detail::warp_max;
using detail::warp_sum;

// Work decomposition: a block of 4 warps meets 64 queries with 64 keys at a time. In each 64×64
// product a warp owns 16 rows (one fragment row): its own score rows in the query-major kernels,
// its own keys in the key-major one. Per-row softmax work stays inside the warp, so only the tile
// loads (and, key-major, the switch from query rows to key rows) need the whole block.
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kFragment = 16;  // WMMA bf16 shape: 16×16×16
constexpr int kTile = 64;
constexpr int kRowsPerWarp = kTile / kWarps;
static_assert(kRowsPerWarp == kFragment, "a warp owns one fragment row of the tile");
constexpr int kTileFragments = kTile / kFragment;
constexpr int kColumnsPerLane = kTile / kWarpSize;  // a lane's share of a score row
constexpr int kMaxHeadFragments = 8;                 // head size ≤ 128

// Shared-memory row lengths. WMMA needs a multiple of 8 elements (bf16) or 4 (fp32); the padding
// also staggers rows across banks.
__host__ __device__ constexpr int head_ld(int head_size) { return head_size + 8; }    // bf16 q, k, v, dO rows
__host__ __device__ constexpr int output_ld(int head_size) { return head_size + 4; }  // fp32 O rows
constexpr int kScoresLd = kTile + 4;                                                   // fp32 S, dP rows
constexpr int kProbabilitiesLd = kTile + 8;                                            // bf16 P, dS rows

using FragmentA = wmma::fragment<wmma::matrix_a, kFragment, kFragment, kFragment, bf16, wmma::row_major>;
using FragmentATransposed = wmma::fragment<wmma::matrix_a, kFragment, kFragment, kFragment, bf16, wmma::col_major>;
using FragmentB = wmma::fragment<wmma::matrix_b, kFragment, kFragment, kFragment, bf16, wmma::row_major>;
using FragmentBTransposed = wmma::fragment<wmma::matrix_b, kFragment, kFragment, kFragment, bf16, wmma::col_major>;
using Accumulator = wmma::fragment<wmma::accumulator, kFragment, kFragment, kFragment, float>;

// Consecutive 128-byte aligned regions of dynamic shared memory (WMMA wants 32-byte aligned
// fragments). The host runs the same carving from address 0 (Base = uintptr_t) to learn the size;
// kernels carve from the shared array itself (Base = unsigned char*), so that the compiler sees
// shared-memory pointers and emits ld/st.shared rather than generic accesses.
template <class Base>
class SharedCarver {
 public:
  __host__ __device__ explicit SharedCarver(Base base) : base_(base) {}
  template <class T>
  __host__ __device__ T* take(int count) {
    T* region = reinterpret_cast<T*>(base_ + used_);
    used_ += (static_cast<size_t>(count) * sizeof(T) + 127) / 128 * 128;
    return region;
  }
  __host__ __device__ size_t used() const { return used_; }

 private:
  Base base_;
  size_t used_ = 0;
};

struct ForwardShared {
  bf16 *q, *k, *v, *p;
  float *s, *o, *row_max, *row_sum;
  size_t bytes;
  template <class Base>
  __host__ __device__ ForwardShared(Base base, int head_size) {
    SharedCarver<Base> carve(base);
    q = carve.template take<bf16>(kTile * head_ld(head_size));
    k = carve.template take<bf16>(kTile * head_ld(head_size));
    v = carve.template take<bf16>(kTile * head_ld(head_size));
    p = carve.template take<bf16>(kTile * kProbabilitiesLd);
    s = carve.template take<float>(kTile * kScoresLd);
    o = carve.template take<float>(kTile * output_ld(head_size));
    row_max = carve.template take<float>(kTile);
    row_sum = carve.template take<float>(kTile);
    bytes = carve.used();
  }
};

struct BackwardShared {
  bf16 *q, *k, *v, *dout, *p, *ds;
  float *s, *dp, *lse, *delta, *staging;
  size_t bytes;
  template <class Base>
  __host__ __device__ BackwardShared(Base base, int head_size) {
    SharedCarver<Base> carve(base);
    q = carve.template take<bf16>(kTile * head_ld(head_size));
    k = carve.template take<bf16>(kTile * head_ld(head_size));
    v = carve.template take<bf16>(kTile * head_ld(head_size));
    dout = carve.template take<bf16>(kTile * head_ld(head_size));
    p = carve.template take<bf16>(kTile * kProbabilitiesLd);
    ds = carve.template take<bf16>(kTile * kProbabilitiesLd);
    s = carve.template take<float>(kTile * kScoresLd);
    dp = carve.template take<float>(kTile * kScoresLd);
    lse = carve.template take<float>(kTile);
    delta = carve.template take<float>(kTile);
    staging = carve.template take<float>(kWarps * kFragment * kFragment);
    bytes = carve.used();
  }
};

// Rows first_row … first_row + 63 of one head (row_stride elements apart in global memory) into a
// shared tile, 8 elements (16 bytes) per load; rows at or past T read as zero.
template <int kHeadSize>
__device__ void load_tile(bf16* tile, const bf16* source, int64_t row_stride, int64_t first_row, int64_t T) {
  constexpr int kChunks = kHeadSize / 8;
  for (int i = threadIdx.x; i < kTile * kChunks; i += kThreads) {
    const int r = i / kChunks;
    const int c = (i % kChunks) * 8;
    const int64_t row = first_row + r;
    uint4 value = make_uint4(0u, 0u, 0u, 0u);
    if (row < T) value = *reinterpret_cast<const uint4*>(source + row * row_stride + c);
    *reinterpret_cast<uint4*>(tile + r * head_ld(kHeadSize) + c) = value;
  }
}

// The warp's 16 rows of a 64×64 product a·bᵀ: c (fp32, kScoresLd) = a (16 × hs) · bᵀ, b 64 × hs,
// both bf16 tiles with head_ld rows.
template <int kHeadFragments>
__device__ void warp_product_abt(float* c, const bf16* a, const bf16* b) {
  constexpr int ld = head_ld(kHeadFragments * kFragment);
  Accumulator accumulators[kTileFragments];
#pragma unroll
  for (int j = 0; j < kTileFragments; ++j) wmma::fill_fragment(accumulators[j], 0.0f);
#pragma unroll
  for (int kk = 0; kk < kHeadFragments; ++kk) {
    FragmentA fa;
    wmma::load_matrix_sync(fa, a + kk * kFragment, ld);
#pragma unroll
    for (int j = 0; j < kTileFragments; ++j) {
      FragmentBTransposed fb;  // bᵀ: row j·16 + n of b is column n of the fragment
      wmma::load_matrix_sync(fb, b + j * kFragment * ld + kk * kFragment, ld);
      wmma::mma_sync(accumulators[j], fa, fb, accumulators[j]);
    }
  }
#pragma unroll
  for (int j = 0; j < kTileFragments; ++j) {
    wmma::store_matrix_sync(c + j * kFragment, accumulators[j], kScoresLd, wmma::mem_row_major);
  }
}

// One step of the online softmax on the warp's 16 rows of scores: new running maxima, the tile's
// probabilities exp(s − max) into p (bf16), the running sums, and O rescaled to the new maxima.
__device__ void online_softmax(const ForwardShared& sh, int row0, int64_t first_query, int64_t first_key, int64_t T,
                               float scale, int head_size, int lane) {
  const int ldo = output_ld(head_size);
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = row0 + r;
    const int64_t query = first_query + row;
    float x[kColumnsPerLane];
    float tile_max = -INFINITY;
#pragma unroll
    for (int e = 0; e < kColumnsPerLane; ++e) {
      const int c = lane + e * kWarpSize;
      const int64_t key = first_key + c;
      x[e] = (key <= query && key < T) ? sh.s[row * kScoresLd + c] * scale : -INFINITY;
      tile_max = fmaxf(tile_max, x[e]);
    }
    // Key first_key ≤ every query of the tile is always visible, so new_max is finite.
    const float previous_max = sh.row_max[row];
    const float new_max = fmaxf(previous_max, warp_max(tile_max));
    const float correction = __expf(previous_max - new_max);  // 0 on the first tile
    float tile_sum = 0.0f;
#pragma unroll
    for (int e = 0; e < kColumnsPerLane; ++e) {
      const float p = __expf(x[e] - new_max);  // masked: exp(−∞) = 0
      tile_sum += p;
      sh.p[row * kProbabilitiesLd + lane + e * kWarpSize] = __float2bfloat16_rn(p);
    }
    tile_sum = warp_sum(tile_sum);
    if (correction != 1.0f) {
      for (int d = lane; d < head_size; d += kWarpSize) sh.o[row * ldo + d] *= correction;
    }
    __syncwarp();  // every lane has read row_max[row] before lane 0 replaces it
    if (lane == 0) {
      sh.row_max[row] = new_max;
      sh.row_sum[row] = sh.row_sum[row] * correction + tile_sum;
    }
  }
}

// O (the warp's 16 rows, fp32 in shared memory) += P (16 × 64) · V (64 × hs).
template <int kHeadFragments>
__device__ void accumulate_pv(float* o, const bf16* p, const bf16* v) {
  constexpr int kHeadSize = kHeadFragments * kFragment;
  FragmentA probabilities[kTileFragments];
#pragma unroll
  for (int kk = 0; kk < kTileFragments; ++kk) {
    wmma::load_matrix_sync(probabilities[kk], p + kk * kFragment, kProbabilitiesLd);
  }
#pragma unroll
  for (int f = 0; f < kHeadFragments; ++f) {
    Accumulator accumulator;
    wmma::load_matrix_sync(accumulator, o + f * kFragment, output_ld(kHeadSize), wmma::mem_row_major);
#pragma unroll
    for (int kk = 0; kk < kTileFragments; ++kk) {
      FragmentB values;
      wmma::load_matrix_sync(values, v + kk * kFragment * head_ld(kHeadSize) + f * kFragment, head_ld(kHeadSize));
      wmma::mma_sync(accumulator, probabilities[kk], values, accumulator);
    }
    wmma::store_matrix_sync(o + f * kFragment, accumulator, output_ld(kHeadSize), wmma::mem_row_major);
  }
}

// Where a block works: head h of batch b (grid y = b·NH + h), its 64-row tile (grid x; reversed
// when `longest_first`, for query tiles, whose rows see the most keys last), and the calling
// thread's warp, lane and first row of the warp's 16 in the tile.
struct BlockPlace {
  int64_t b, h, tile;
  int warp, lane, row0;
};

__device__ __forceinline__ BlockPlace block_place(int64_t T, int64_t NH, bool longest_first) {
  const int64_t tiles = (T + kTile - 1) / kTile;
  const int warp = threadIdx.x / kWarpSize;
  return {blockIdx.y / NH, blockIdx.y % NH, longest_first ? tiles - 1 - blockIdx.x : blockIdx.x, warp,
          static_cast<int>(threadIdx.x % kWarpSize), warp * kRowsPerWarp};
}

// Grid: x = query tiles, y = b·NH + h.
template <int kHeadFragments>
__global__ void __launch_bounds__(kThreads) flash_forward_kernel(bf16* out, float* lse, const bf16* qkv, int64_t T,
                                                                 int64_t C, int64_t NH, float scale) {
  constexpr int kHeadSize = kHeadFragments * kFragment;
  extern __shared__ __align__(128) unsigned char shared_memory[];
  const ForwardShared sh(shared_memory, kHeadSize);
  const auto [b, h, query_tile, warp, lane, row0] = block_place(T, NH, /*longest_first=*/true);
  const int64_t first_query = query_tile * kTile, row_stride = 3 * C;
  const bf16* head = qkv + b * T * row_stride + h * kHeadSize;

  load_tile<kHeadSize>(sh.q, head, row_stride, first_query, T);
  for (int i = threadIdx.x; i < kTile * output_ld(kHeadSize); i += kThreads) sh.o[i] = 0.0f;
  if (threadIdx.x < kTile) {
    sh.row_max[threadIdx.x] = -INFINITY;
    sh.row_sum[threadIdx.x] = 0.0f;
  }
  for (int64_t key_tile = 0; key_tile <= query_tile; ++key_tile) {
    const int64_t first_key = key_tile * kTile;
    __syncthreads();  // the previous step is done with k and v (first step: q, o and the rows are in)
    load_tile<kHeadSize>(sh.k, head + C, row_stride, first_key, T);
    load_tile<kHeadSize>(sh.v, head + 2 * C, row_stride, first_key, T);
    __syncthreads();
    warp_product_abt<kHeadFragments>(sh.s + row0 * kScoresLd, sh.q + row0 * head_ld(kHeadSize), sh.k);
    __syncwarp();
    online_softmax(sh, row0, first_query, first_key, T, scale, kHeadSize, lane);
    __syncwarp();
    accumulate_pv<kHeadFragments>(sh.o + row0 * output_ld(kHeadSize), sh.p + row0 * kProbabilitiesLd, sh.v);
  }
  __syncwarp();
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = row0 + r;
    const int64_t query = first_query + row;
    if (query >= T) break;
    const float inverse_sum = 1.0f / sh.row_sum[row];
    bf16* destination = out + (b * T + query) * C + h * kHeadSize;
    for (int d = lane; d < kHeadSize; d += kWarpSize) {
      destination[d] = __float2bfloat16_rn(sh.o[row * output_ld(kHeadSize) + d] * inverse_sum);
    }
    if (lane == 0) lse[(b * NH + h) * T + query] = sh.row_max[row] + logf(sh.row_sum[row]);
  }
}

// delta[(b·NH + h)·T + t] = Σ_d dO·O over the head's channels: one warp per row.
__global__ void __launch_bounds__(kThreads) flash_delta_kernel(float* delta, const bf16* dout, const bf16* out,
                                                               int64_t rows, int64_t T, int64_t C, int64_t NH,
                                                               int head_size) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarpSize;
  if (row >= rows) return;  // whole warps leave together
  const int lane = threadIdx.x % kWarpSize;
  const int64_t t = row % T, h = (row / T) % NH, b = row / (T * NH);
  const int64_t offset = (b * T + t) * C + h * head_size;
  float dot = 0.0f;
  for (int d = lane; d < head_size; d += kWarpSize) {
    dot += __bfloat162float(dout[offset + d]) * __bfloat162float(out[offset + d]);
  }
  dot = warp_sum(dot);
  if (lane == 0) delta[row] = dot;
}

// The warp's 16 query rows of P = exp(scale·s − lse) (masked) and dS = scale · P ∘ (dP − delta), as
// bf16 for the following products. p may be null (the query-major kernel needs only dS).
__device__ void score_gradients(const BackwardShared& sh, bf16* p, int row0, int64_t first_query,
                                int64_t first_key, int64_t T, float scale, int lane) {
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = row0 + r;
    const int64_t query = first_query + row;
#pragma unroll
    for (int e = 0; e < kColumnsPerLane; ++e) {
      const int c = lane + e * kWarpSize;
      const bool visible = query < T && first_key + c <= query;
      const float probability = visible ? __expf(sh.s[row * kScoresLd + c] * scale - sh.lse[row]) : 0.0f;
      const float score_gradient = scale * probability * (sh.dp[row * kScoresLd + c] - sh.delta[row]);
      if (p != nullptr) p[row * kProbabilitiesLd + c] = __float2bfloat16_rn(probability);
      sh.ds[row * kProbabilitiesLd + c] = __float2bfloat16_rn(score_gradient);
    }
  }
}

// Query rows first_query … + 63: q and dO tiles, their lse and delta (zero past T).
template <int kHeadSize>
__device__ void load_query_side(const BackwardShared& sh, const bf16* q_head, const bf16* dout_head,
                                const float* lse_head, const float* delta_head, int64_t first_query, int64_t T,
                                int64_t C) {
  load_tile<kHeadSize>(sh.q, q_head, 3 * C, first_query, T);
  load_tile<kHeadSize>(sh.dout, dout_head, C, first_query, T);
  if (threadIdx.x < kTile) {
    const int64_t query = first_query + threadIdx.x;
    sh.lse[threadIdx.x] = query < T ? lse_head[query] : 0.0f;
    sh.delta[threadIdx.x] = query < T ? delta_head[query] : 0.0f;
  }
}

// target rows first_row … first_row + 15 (row_stride apart), 16 columns, += the fragment (= with
// `overwrite`; one rounding to bf16); rows at or past T are skipped. staging: the warp's 16×16 fp32
// scratch.
__device__ void add_fragment(bf16* target, int64_t row_stride, const Accumulator& fragment, float* staging,
                             int64_t first_row, int64_t T, int lane, bool overwrite) {
  wmma::store_matrix_sync(staging, fragment, kFragment, wmma::mem_row_major);
  __syncwarp();
  for (int i = lane; i < kFragment * kFragment; i += kWarpSize) {
    const int64_t row = first_row + i / kFragment;
    if (row < T) {
      bf16& element = target[row * row_stride + i % kFragment];
      element = __float2bfloat16_rn(overwrite ? staging[i] : __bfloat162float(element) + staging[i]);
    }
  }
  __syncwarp();
}

// Key-major: a block owns 64 keys of one head (grid x = key tiles, early keys, which see the most
// queries, first) and walks the query tiles from the diagonal on; each warp keeps dK and dV of its
// 16 keys in accumulator fragments.
template <int kHeadFragments>
__global__ void __launch_bounds__(kThreads)
    flash_backward_key_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* delta,
                              int64_t T, int64_t C, int64_t NH, float scale, bool overwrite) {
  constexpr int kHeadSize = kHeadFragments * kFragment;
  constexpr int ld = head_ld(kHeadSize);
  extern __shared__ __align__(128) unsigned char shared_memory[];
  const BackwardShared sh(shared_memory, kHeadSize);
  const int64_t tiles = (T + kTile - 1) / kTile;
  const auto [b, h, key_tile, warp, lane, row0] = block_place(T, NH, /*longest_first=*/false);
  const int64_t first_key = key_tile * kTile, row_stride = 3 * C;
  const bf16* head = qkv + b * T * row_stride + h * kHeadSize;
  const bf16* dout_head = dout + b * T * C + h * kHeadSize;
  const float* lse_head = lse + (b * NH + h) * T;
  const float* delta_head = delta + (b * NH + h) * T;

  load_tile<kHeadSize>(sh.k, head + C, row_stride, first_key, T);
  load_tile<kHeadSize>(sh.v, head + 2 * C, row_stride, first_key, T);
  Accumulator dk[kHeadFragments], dv[kHeadFragments];
#pragma unroll
  for (int f = 0; f < kHeadFragments; ++f) {
    wmma::fill_fragment(dk[f], 0.0f);
    wmma::fill_fragment(dv[f], 0.0f);
  }
  for (int64_t query_tile = key_tile; query_tile < tiles; ++query_tile) {
    const int64_t first_query = query_tile * kTile;
    __syncthreads();  // the previous step is done with q, dO, P and dS
    load_query_side<kHeadSize>(sh, head, dout_head, lse_head, delta_head, first_query, T, C);
    __syncthreads();
    // Query rows row0 … row0 + 15: S = q·kᵀ and dP = dO·vᵀ, then P and dS.
    warp_product_abt<kHeadFragments>(sh.s + row0 * kScoresLd, sh.q + row0 * ld, sh.k);
    warp_product_abt<kHeadFragments>(sh.dp + row0 * kScoresLd, sh.dout + row0 * ld, sh.v);
    __syncwarp();
    score_gradients(sh, sh.p, row0, first_query, first_key, T, scale, lane);
    __syncthreads();  // key rows need P and dS of every query row
    // Key rows row0 … row0 + 15: dV += Pᵀ·dO and dK += dSᵀ·q over the tile's 64 queries. Not
    // unrolled: the dK and dV accumulators already hold 2·hs/16 fragments in registers.
#pragma unroll 1
    for (int kk = 0; kk < kTileFragments; ++kk) {
      FragmentATransposed pt, dst;  // column row0 + i of P is row i of Pᵀ
      wmma::load_matrix_sync(pt, sh.p + kk * kFragment * kProbabilitiesLd + row0, kProbabilitiesLd);
      wmma::load_matrix_sync(dst, sh.ds + kk * kFragment * kProbabilitiesLd + row0, kProbabilitiesLd);
#pragma unroll
      for (int f = 0; f < kHeadFragments; ++f) {
        FragmentB dout_fragment, q_fragment;
        wmma::load_matrix_sync(dout_fragment, sh.dout + kk * kFragment * ld + f * kFragment, ld);
        wmma::mma_sync(dv[f], pt, dout_fragment, dv[f]);
        wmma::load_matrix_sync(q_fragment, sh.q + kk * kFragment * ld + f * kFragment, ld);
        wmma::mma_sync(dk[f], dst, q_fragment, dk[f]);
      }
    }
  }
  float* staging = sh.staging + warp * kFragment * kFragment;
  bf16* dk_head = dqkv + b * T * row_stride + C + h * kHeadSize;
#pragma unroll
  for (int f = 0; f < kHeadFragments; ++f) {
    add_fragment(dk_head + f * kFragment, row_stride, dk[f], staging, first_key + row0, T, lane, overwrite);
    add_fragment(dk_head + C + f * kFragment, row_stride, dv[f], staging, first_key + row0, T, lane, overwrite);
  }
}

// Query-major: a block owns 64 queries (grid x = query tiles, longest first) and walks the key
// tiles up to the diagonal; each warp keeps dQ of its 16 queries in accumulator fragments.
template <int kHeadFragments>
__global__ void __launch_bounds__(kThreads)
    flash_backward_query_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* delta,
                                int64_t T, int64_t C, int64_t NH, float scale, bool overwrite) {
  constexpr int kHeadSize = kHeadFragments * kFragment;
  constexpr int ld = head_ld(kHeadSize);
  extern __shared__ __align__(128) unsigned char shared_memory[];
  const BackwardShared sh(shared_memory, kHeadSize);
  const auto [b, h, query_tile, warp, lane, row0] = block_place(T, NH, /*longest_first=*/true);
  const int64_t first_query = query_tile * kTile, row_stride = 3 * C;
  const bf16* head = qkv + b * T * row_stride + h * kHeadSize;

  load_query_side<kHeadSize>(sh, head, dout + b * T * C + h * kHeadSize, lse + (b * NH + h) * T,
                             delta + (b * NH + h) * T, first_query, T, C);
  Accumulator dq[kHeadFragments];
#pragma unroll
  for (int f = 0; f < kHeadFragments; ++f) wmma::fill_fragment(dq[f], 0.0f);
  for (int64_t key_tile = 0; key_tile <= query_tile; ++key_tile) {
    const int64_t first_key = key_tile * kTile;
    __syncthreads();  // the previous step is done with k and v (first step: the query side is in)
    load_tile<kHeadSize>(sh.k, head + C, row_stride, first_key, T);
    load_tile<kHeadSize>(sh.v, head + 2 * C, row_stride, first_key, T);
    __syncthreads();
    warp_product_abt<kHeadFragments>(sh.s + row0 * kScoresLd, sh.q + row0 * ld, sh.k);
    warp_product_abt<kHeadFragments>(sh.dp + row0 * kScoresLd, sh.dout + row0 * ld, sh.v);
    __syncwarp();
    score_gradients(sh, nullptr, row0, first_query, first_key, T, scale, lane);
    __syncwarp();
    // dQ += dS (16 × 64) · k (64 × hs).
#pragma unroll
    for (int kk = 0; kk < kTileFragments; ++kk) {
      FragmentA ds_fragment;
      wmma::load_matrix_sync(ds_fragment, sh.ds + row0 * kProbabilitiesLd + kk * kFragment, kProbabilitiesLd);
#pragma unroll
      for (int f = 0; f < kHeadFragments; ++f) {
        FragmentB k_fragment;
        wmma::load_matrix_sync(k_fragment, sh.k + kk * kFragment * ld + f * kFragment, ld);
        wmma::mma_sync(dq[f], ds_fragment, k_fragment, dq[f]);
      }
    }
  }
  float* staging = sh.staging + warp * kFragment * kFragment;
  bf16* dq_head = dqkv + b * T * row_stride + h * kHeadSize;
#pragma unroll
  for (int f = 0; f < kHeadFragments; ++f) {
    add_fragment(dq_head + f * kFragment, row_stride, dq[f], staging, first_query + row0, T, lane, overwrite);
  }
}

unsigned tiles_along(int64_t T) { return static_cast<unsigned>((T + kTile - 1) / kTile); }

AttentionShape check_shape(const char* caller, int64_t B, int64_t T, int64_t C, int64_t NH) {
  return check_attention_shape(caller, B, T, C, NH, kMaxHeadFragments * kFragment, kFragment);
}

void check_aligned(const void* pointer, const char* name, const AttentionShape& s, const char* caller) {
  if (reinterpret_cast<uintptr_t>(pointer) % 16 != 0) {
    throw std::invalid_argument(shape_text(caller, s) + ": " + name + " is not 16-byte aligned");
  }
}

// Calls launch(std::integral_constant<int, head_size / 16>) for the instantiated head sizes.
template <class Launch>
void dispatch_head_fragments(int head_size, Launch&& launch) {
  switch (head_size / kFragment) {
    case 1: launch(std::integral_constant<int, 1>{}); break;
    case 2: launch(std::integral_constant<int, 2>{}); break;
    case 3: launch(std::integral_constant<int, 3>{}); break;
    case 4: launch(std::integral_constant<int, 4>{}); break;
    case 5: launch(std::integral_constant<int, 5>{}); break;
    case 6: launch(std::integral_constant<int, 6>{}); break;
    case 7: launch(std::integral_constant<int, 7>{}); break;
    case 8: launch(std::integral_constant<int, 8>{}); break;
    default: throw std::logic_error("flash attention: head size " + std::to_string(head_size) + " not instantiated");
  }
}

}  // namespace

bool flash_attention_supports(int64_t head_size) {
  return head_size > 0 && head_size % kFragment == 0 && head_size <= kMaxHeadFragments * kFragment;
}

void flash_attention_forward(bf16* out, float* lse, const bf16* qkv, int64_t B, int64_t T, int64_t C, int64_t NH,
                             cudaStream_t stream) {
  const AttentionShape s = check_shape("flash_attention_forward", B, T, C, NH);
  if (B == 0 || T == 0) return;
  check_aligned(qkv, "qkv", s, "flash_attention_forward");
  check_aligned(out, "out", s, "flash_attention_forward");
  const std::string what = shape_text("flash_forward_kernel", s);
  dispatch_head_fragments(s.head_size, [&](auto fragments) {
    constexpr int kHeadFragments = decltype(fragments)::value;
    const size_t bytes = ForwardShared(uintptr_t{0}, kHeadFragments * kFragment).bytes;
    allow_shared_memory(flash_forward_kernel<kHeadFragments>, bytes, what);
    flash_forward_kernel<kHeadFragments><<<dim3(tiles_along(T), static_cast<unsigned>(B * NH)), kThreads, bytes,
                                           stream>>>(out, lse, qkv, T, C, NH, s.scale);
  });
  check_launch(what);
}

size_t flash_attention_backward_scratch_bytes(int64_t B, int64_t T, int64_t NH) {
  return static_cast<size_t>(B * NH * T) * sizeof(float);
}

void flash_attention_backward(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* out, const float* lse,
                              void* scratch, int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream,
                              bool overwrite) {
  const AttentionShape s = check_shape("flash_attention_backward", B, T, C, NH);
  if (B == 0 || T == 0) return;
  check_aligned(qkv, "qkv", s, "flash_attention_backward");
  check_aligned(dout, "dout", s, "flash_attention_backward");
  check_aligned(dqkv, "dqkv", s, "flash_attention_backward");
  float* delta = static_cast<float*>(scratch);
  const int64_t rows = B * NH * T;
  flash_delta_kernel<<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kThreads, 0, stream>>>(
      delta, dout, out, rows, T, C, NH, s.head_size);
  check_launch(shape_text("flash_delta_kernel", s));

  // The two kernels write disjoint parts of dqkv (k and v, and q), so their order does not matter.
  const dim3 grid(tiles_along(T), static_cast<unsigned>(B * NH));
  const std::string key_what = shape_text("flash_backward_key_kernel", s);
  const std::string query_what = shape_text("flash_backward_query_kernel", s);
  dispatch_head_fragments(s.head_size, [&](auto fragments) {
    constexpr int kHeadFragments = decltype(fragments)::value;
    const size_t bytes = BackwardShared(uintptr_t{0}, kHeadFragments * kFragment).bytes;
    allow_shared_memory(flash_backward_key_kernel<kHeadFragments>, bytes, key_what);
    flash_backward_key_kernel<kHeadFragments>
        <<<grid, kThreads, bytes, stream>>>(dqkv, dout, qkv, lse, delta, T, C, NH, s.scale, overwrite);
    check_launch(key_what);
    allow_shared_memory(flash_backward_query_kernel<kHeadFragments>, bytes, query_what);
    flash_backward_query_kernel<kHeadFragments>
        <<<grid, kThreads, bytes, stream>>>(dqkv, dout, qkv, lse, delta, T, C, NH, s.scale, overwrite);
    check_launch(query_what);
  });
}

}  // namespace meridian::ops::cuda

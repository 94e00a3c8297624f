#include "ops/cuda/flash_attention.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ops/cuda/async_copy.cuh"
#include "ops/cuda/attention_shape.cuh"
#include "ops/cuda/kernel_common.cuh"
#include "ops/cuda/mma_sync.cuh"

namespace meridian::ops::cuda {
namespace {

using bf16 = __nv_bfloat16;
using detail::a_fragment_from_accumulators;
using detail::allow_shared_memory;
using detail::AttentionShape;
using detail::check_attention_shape;
using detail::check_launch;
using detail::commit_async_copies;
using detail::copy_async;
using detail::high_bf16;
using detail::kFullWarp;
using detail::kVectorElements;
using detail::kWarpSize;
using detail::load_b_fragments_transposed;
using detail::load_b_fragments_from_rows;
using detail::load_floats;
using detail::load_pair;
using detail::low_bf16;
using detail::mma_bf16_m16n8k16;
using detail::pack_bf16;
using detail::shape_text;
using detail::wait_async_copies;

// Work decomposition: a block of 4 warps meets 64 queries with 64 keys at a time; a warp owns 16 rows
// of each 64 × 64 product (one mma row block): its 16 queries in the forward and dQ kernels, its 16
// keys in the dK/dV kernel. Scores, probabilities and all accumulators stay in registers in the
// mma layout (mma_sync.cuh); shared memory holds only the tiles every warp reads.
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kTile = 64;
constexpr int kRowsPerWarp = kTile / kWarps;
static_assert(kRowsPerWarp == 16, "a warp owns one mma row block");
constexpr int kMaxHeadSize = 128;
// Blocks an SM must hold at once, which caps the registers per thread (65536 / (128 · 3) → 168): the
// compiler would otherwise spend registers on loads hoisted ahead and leave room for two blocks only.
// Above hs = 64 the accumulators alone need more.
__host__ __device__ constexpr int min_blocks_per_sm(int head_chunks) { return head_chunks <= 4 ? 3 : 2; }
// Backward walks the other side in halves of 32 columns: the scores and their gradients of a half
// (2 × 4 accumulator tiles) stay in registers beside the head-sized accumulators.
constexpr int kHalf = kTile / 2;

// Row length of shared tiles: 8 elements (16 bytes) of padding keep rows 16-byte aligned for the
// 16-byte cp.async copies and ldmatrix's row addresses, and make the row stride (hs + 8) / 2 = 4 × an
// odd number of 4-byte banks (hs a multiple of 16), so the 8 rows of each 8-row phase of an ldmatrix
// start in 8 different groups of 4 banks and touch 32 different banks.
__host__ __device__ constexpr int padded(int elements) { return elements + 8; }

// Consecutive 128-byte aligned regions of dynamic shared memory. The host runs the same carving from
// address 0 (Base = uintptr_t) to learn the size; kernels carve from the shared array itself (Base =
// unsigned char*), so that the compiler sees shared-memory pointers and emits ld/st.shared.
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

// A tile of 64 rows (tokens) × hs channels, row-major.
__host__ __device__ constexpr int rows_tile_elements(int head_size) { return kTile * padded(head_size); }

// Each kernel walks tiles of the other side, double-buffered: tile n lives in stage n % 2, and the copies
// of tile n + 1 into the other stage run during tile n's products. A layout below carves stage 0; stage s
// is the same layout s · stage_bytes further on (an offset, not an array of pointers, which a run-time
// index would put in local memory).
constexpr int kStages = 2;

template <class T>
__device__ __forceinline__ T* in_stage(T* stage0, size_t stage_bytes, int64_t tile) {
  return reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(stage0) + (tile % kStages) * stage_bytes);
}

// Forward and dQ kernels: the key tile's k and v (B operands of q·kᵀ and dO·vᵀ as they are, of P·v and
// dS·k through transposing loads).
struct KeyValueShared {
  bf16 *k, *v;
  size_t stage_bytes, bytes;
  template <class Base>
  __host__ __device__ KeyValueShared(Base base, int head_size) {
    SharedCarver<Base> carve(base);
    k = carve.template take<bf16>(rows_tile_elements(head_size));
    v = carve.template take<bf16>(rows_tile_elements(head_size));
    stage_bytes = carve.used();
    bytes = kStages * stage_bytes;
  }
};

// dK/dV kernel: the query tile's q and dO (B operands of k·qᵀ and v·dOᵀ as they are, of dSᵀ·q and Pᵀ·dO
// through transposing loads), with the tile's lse and delta.
struct QueryShared {
  bf16 *q, *dout;
  float *lse, *delta;
  size_t stage_bytes, bytes;
  template <class Base>
  __host__ __device__ QueryShared(Base base, int head_size) {
    SharedCarver<Base> carve(base);
    q = carve.template take<bf16>(rows_tile_elements(head_size));
    dout = carve.template take<bf16>(rows_tile_elements(head_size));
    lse = carve.template take<float>(kTile);
    delta = carve.template take<float>(kTile);
    stage_bytes = carve.used();
    bytes = kStages * stage_bytes;
  }
};

// Starts copying rows first_row … first_row + 63 of one head (row_stride elements apart in global
// memory) into tile[r][c] (padded(hs) per row), 16 bytes per copy; rows at or past T are zero-filled.
// The caller commits and waits. Thread x copies piece x % (hs / 8) of rows x / (hs / 8) + n · kRowsPerPass
// (the threads past whole rows, when hs / 8 does not divide the block, copy nothing): its pieces are a
// fixed stride apart, so the fully unrolled loop costs a few integer instructions per copy and keeps
// one pointer, not one per piece, alive across the kernel's main loop.
template <int kHeadSize>
__device__ __forceinline__ void copy_rows_async(bf16* tile, const bf16* source, int64_t row_stride, int64_t first_row,
                                                int64_t T) {
  constexpr int kChunks = kHeadSize / 8, kRowsPerPass = kThreads / kChunks;
  constexpr int kPasses = (kTile + kRowsPerPass - 1) / kRowsPerPass;
  const int first = static_cast<int>(threadIdx.x) / kChunks, c = (static_cast<int>(threadIdx.x) % kChunks) * 8;
  if (first >= kRowsPerPass) return;
  const bf16* from = source + first_row * row_stride + c;
  // 63 rows of 3C elements: C ≤ 128 · 65535 (check_shape) keeps that below 2³¹.
  const int stride = static_cast<int>(row_stride);
  const int64_t rows_left = T - first_row;
#pragma unroll
  for (int n = 0; n < kPasses; ++n) {
    const int r = first + n * kRowsPerPass;
    if (kTile % kRowsPerPass != 0 && r >= kTile) break;  // the last pass may cover fewer rows
    const bool valid = r < rows_left;
    copy_async<16>(tile + r * padded(kHeadSize) + c, from + (valid ? r * stride : 0), valid);
  }
}

// Starts copying key tile `key_tile` of one head's k and v (head: its q columns in the qkv rows) into
// the tile's stage, as one group.
template <int kHeadSize>
__device__ void copy_key_value_tile_async(const KeyValueShared& sh, const bf16* head, int64_t C, int64_t key_tile,
                                          int64_t T) {
  copy_rows_async<kHeadSize>(in_stage(sh.k, sh.stage_bytes, key_tile), head + C, 3 * C, key_tile * kTile, T);
  copy_rows_async<kHeadSize>(in_stage(sh.v, sh.stage_bytes, key_tile), head + 2 * C, 3 * C, key_tile * kTile, T);
  commit_async_copies();
}

// Before the products on tile `tile` of a double-buffered walk: once every warp is done with the
// previous tile, starts the copies of the next one (copy_tile(tile + 1), when has_next) into the stage
// that tile used, waits for this tile's copies, and makes every thread's copies visible to the block.
template <class CopyTile>
__device__ __forceinline__ void begin_tile(int64_t tile, bool has_next, const CopyTile& copy_tile) {
  __syncthreads();
  if (has_next) {
    copy_tile(tile + 1);
    wait_async_copies<1>();  // this tile's group, not the next one's
  } else {
    wait_async_copies<0>();
  }
  __syncthreads();
}

// The warp's 16 rows first_row … + 15 of one head, all hs channels, as A fragments straight from
// global memory (kept in registers for the whole kernel); rows at or past T are zero.
template <int kHeadChunks>
__device__ void load_a_rows(uint32_t (&a)[kHeadChunks][4], const bf16* source, int64_t row_stride, int64_t first_row,
                            int64_t T, int lane) {
  const int g = lane / 4, t = lane % 4;
  const int64_t row_low = first_row + g, row_high = row_low + 8;
#pragma unroll
  for (int kk = 0; kk < kHeadChunks; ++kk) {
    const int c = kk * 16 + 2 * t;
    a[kk][0] = row_low < T ? load_pair(source + row_low * row_stride + c) : 0u;
    a[kk][1] = row_high < T ? load_pair(source + row_high * row_stride + c) : 0u;
    a[kk][2] = row_low < T ? load_pair(source + row_low * row_stride + c + 8) : 0u;
    a[kk][3] = row_high < T ? load_pair(source + row_high * row_stride + c + 8) : 0u;
  }
}

// Writes (or, without overwrite, adds to) rows first_row … + 15 of one head, channels 0 … hs − 1,
// from accumulators in the mma layout (acc[f]: channels 8f … 8f + 7); rows at or past T are skipped.
// Each pair of elements is read and written by one thread: deterministic, no atomics.
template <int kHeadTiles>
__device__ void store_rows(bf16* target, int64_t row_stride, const float (&acc)[kHeadTiles][4], float multiplier_low,
                           float multiplier_high, int64_t first_row, int64_t T, int lane, bool overwrite) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = first_row + g + 8 * half;
    if (row >= T) continue;
    const float multiplier = half == 0 ? multiplier_low : multiplier_high;
#pragma unroll
    for (int f = 0; f < kHeadTiles; ++f) {
      uint32_t* pair = reinterpret_cast<uint32_t*>(target + row * row_stride + 8 * f + 2 * t);
      float low = acc[f][2 * half] * multiplier, high = acc[f][2 * half + 1] * multiplier;
      if (!overwrite) {
        const uint32_t old = *pair;
        low += low_bf16(old);
        high += high_bf16(old);
      }
      *pair = pack_bf16(low, high);
    }
  }
}

// Reduces a per-lane value over the 4 lanes of its group (the lanes holding one accumulator row).
__device__ __forceinline__ float group_max(float value) {
  value = fmaxf(value, __shfl_xor_sync(kFullWarp, value, 1));
  return fmaxf(value, __shfl_xor_sync(kFullWarp, value, 2));
}
__device__ __forceinline__ float group_sum(float value) {
  value += __shfl_xor_sync(kFullWarp, value, 1);
  return value + __shfl_xor_sync(kFullWarp, value, 2);
}

// 2^x as one MUFU.EX2 (ex2.approx.ftz, what __expf runs after multiplying by log2 e; 2^−∞ = 0). The
// kernels fold log2 e into the scale, so each probability costs one FFMA (scale the score, subtract the
// row's maximum or log-sum-exp) and one MUFU.
constexpr float kLog2e = 1.4426950408889634f;
__device__ __forceinline__ float exp2_approx(float x) {
#if defined(__CUDACC__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return std::exp2(x);
#endif
}

// The B fragments of rows column0 … column0 + 8·kTiles − 1 of a shared row tile (padded(hs) per row),
// over the head's channels, two 8-row tiles per ldmatrix.x4: use(kk, j, fragments) for channel chunk kk
// and tiles j, j + 1. Each pair is read from shared memory once, whatever number of products use it.
template <int kHeadChunks, int kTiles, class Use>
__device__ __forceinline__ void for_row_fragments(const bf16* rows, int column0, int lane, Use&& use) {
  static_assert(kTiles % 2 == 0, "tiles are read in pairs");
#pragma unroll
  for (int kk = 0; kk < kHeadChunks; ++kk) {
#pragma unroll
    for (int j = 0; j < kTiles; j += 2) {
      uint32_t fragments[2][2];
      load_b_fragments_transposed(fragments, rows, padded(kHeadChunks * 16), column0 + 8 * j, 16 * kk, lane);
      use(kk, j, fragments);
    }
  }
}

// The B fragments of rows row0 … row0 + 8·kTiles − 1 of a shared row tile read by transposing loads,
// over the head's channels f (two 8-channel tiles per ldmatrix.x4.trans): use(kk, f, fragments) for
// row chunk kk (16 rows) and channel tiles f, f + 1.
template <int kHeadTiles, int kTiles, class Use>
__device__ __forceinline__ void for_transposed_row_fragments(const bf16* rows, int row0, int lane, Use&& use) {
  static_assert(kHeadTiles % 2 == 0, "head sizes are multiples of 16");
#pragma unroll
  for (int kk = 0; kk < kTiles / 2; ++kk) {
#pragma unroll
    for (int f = 0; f < kHeadTiles; f += 2) {
      uint32_t fragments[2][2];
      load_b_fragments_from_rows(fragments, rows, padded(kHeadTiles * 8), row0 + 16 * kk, 8 * f, lane);
      use(kk, f, fragments);
    }
  }
}

// acc[n] += a · b[0] and acc[n + 1] += a · b[1]: one A fragment against the two B fragments of an
// ldmatrix.x4.
template <int kTiles>
__device__ __forceinline__ void mma_pair(float (&acc)[kTiles][4], int n, const uint32_t (&a)[4],
                                         const uint32_t (&b)[2][2]) {
  mma_bf16_m16n8k16(acc[n], a, b[0]);
  mma_bf16_m16n8k16(acc[n + 1], a, b[1]);
}

// The same for each group of 16 rows from kFirstGroup on (the groups before it sit out), with the
// group's A fragment m: each pair of B fragments feeds every group.
template <int kFirstGroup, int kGroups, int kTiles, int kFragments>
__device__ __forceinline__ void mma_pair_per_group(float (&acc)[kGroups][kTiles][4], int n,
                                                   const uint32_t (&a)[kGroups][kFragments][4], int m,
                                                   const uint32_t (&b)[2][2]) {
#pragma unroll
  for (int r = kFirstGroup; r < kGroups; ++r) mma_pair(acc[r], n, a[r][m], b);
}

// acc[j] += a · rowsᵀ for j < kTiles: the warp's 16 rows (A fragments over the head's channels)
// against rows column0 + 8j … + 7 of a shared row tile. S = q·kᵀ and its kin.
template <int kHeadChunks, int kTiles>
__device__ __forceinline__ void multiply_by_rows(float (&acc)[kTiles][4], const uint32_t (&a)[kHeadChunks][4],
                                                 const bf16* rows, int column0, int lane) {
  for_row_fragments<kHeadChunks, kTiles>(
      rows, column0, lane, [&](int kk, int j, const uint32_t(&b)[2][2]) { mma_pair(acc, j, a[kk], b); });
}

// The same for groups of 16 rows, from kFirstGroup on.
template <int kFirstGroup, int kGroups, int kHeadChunks, int kTiles>
__device__ __forceinline__ void multiply_groups_by_rows(float (&acc)[kGroups][kTiles][4],
                                                        const uint32_t (&a)[kGroups][kHeadChunks][4],
                                                        const bf16* rows, int column0, int lane) {
  for_row_fragments<kHeadChunks, kTiles>(rows, column0, lane, [&](int kk, int j, const uint32_t(&b)[2][2]) {
    mma_pair_per_group<kFirstGroup>(acc, j, a, kk, b);
  });
}

// The A fragments of X (16 × 8·kTiles): its accumulator tiles, rounded to bf16 in pairs.
template <int kTiles>
__device__ __forceinline__ void a_fragments_from_accumulators(uint32_t (&a)[kTiles / 2][4],
                                                              const float (&x)[kTiles][4]) {
#pragma unroll
  for (int kk = 0; kk < kTiles / 2; ++kk) a_fragment_from_accumulators(a[kk], x[2 * kk], x[2 * kk + 1]);
}

// acc[f] += X · Y over the head's channels f: X (16 × 8·kTiles) the accumulator tiles x, rounded to
// bf16 as A fragments; Y rows row0 … row0 + 8·kTiles − 1 of a shared row tile (padded(hs) per row),
// read by transposing loads. O += P·v and its kin.
template <int kHeadTiles, int kTiles>
__device__ __forceinline__ void multiply_accumulators_by(float (&acc)[kHeadTiles][4], const float (&x)[kTiles][4],
                                                         const bf16* rows, int row0, int lane) {
  uint32_t a[kTiles / 2][4];
  a_fragments_from_accumulators<kTiles>(a, x);
  for_transposed_row_fragments<kHeadTiles, kTiles>(
      rows, row0, lane, [&](int kk, int f, const uint32_t(&b)[2][2]) { mma_pair(acc, f, a[kk], b); });
}

// The same for groups of 16 rows of X and of the accumulators, from kFirstGroup on.
template <int kFirstGroup, int kGroups, int kHeadTiles, int kTiles>
__device__ __forceinline__ void multiply_groups_accumulators_by(float (&acc)[kGroups][kHeadTiles][4],
                                                                const float (&x)[kGroups][kTiles][4],
                                                                const bf16* rows, int row0, int lane) {
  uint32_t a[kGroups][kTiles / 2][4];
#pragma unroll
  for (int r = kFirstGroup; r < kGroups; ++r) a_fragments_from_accumulators<kTiles>(a[r], x[r]);
  for_transposed_row_fragments<kHeadTiles, kTiles>(rows, row0, lane, [&](int kk, int f, const uint32_t(&b)[2][2]) {
    mma_pair_per_group<kFirstGroup>(acc, f, a, kk, b);
  });
}

// Where a block works: head h of batch b (grid y = b·NH + h), its tile of `tile_rows` rows (grid x;
// reversed when `longest_first`, for query tiles, whose rows see the most keys), and the calling
// thread's warp, lane and first row of the warp's 16 in the tile's first 64.
struct BlockPlace {
  int64_t b, h, tile;
  int warp, lane, row0;
};

__device__ __forceinline__ BlockPlace block_place(int64_t T, int64_t NH, bool longest_first, int tile_rows = kTile) {
  const int64_t tiles = (T + tile_rows - 1) / tile_rows;
  const int warp = threadIdx.x / kWarpSize;
  return {blockIdx.y / NH, blockIdx.y % NH, longest_first ? tiles - 1 - blockIdx.x : blockIdx.x, warp,
          static_cast<int>(threadIdx.x % kWarpSize), warp * kRowsPerWarp};
}

// Query rows per block of the query-major kernels (forward and dQ): kRowGroups groups of 64, a warp
// owning 16 rows of each.
__host__ __device__ constexpr int query_tile_rows(int row_groups) { return row_groups * kTile; }
// Two row groups hold twice the per-row state (ptxas at hs = 64: forward 251 registers, dQ 252, no
// spill), so the bound asks for 2 blocks per SM; above hs = 64 the kernels are not instantiated with two.
__host__ __device__ constexpr int query_min_blocks_per_sm(int head_chunks, int row_groups) {
  return row_groups == 1 ? min_blocks_per_sm(head_chunks) : 2;
}
constexpr int kMaxRowGroupsHeadChunks = 4;

// The last key tile a block of the query-major kernels meets: its last row group's diagonal tile, or
// the last tile before T when the block's rows run past T.
__device__ __forceinline__ int64_t last_key_tile_met(int64_t last_diagonal, int64_t T) {
  const int64_t last_of_T = (T - 1) / kTile;
  return last_diagonal < last_of_T ? last_diagonal : last_of_T;
}

// Forward. Grid: x = query tiles of 64·kRowGroups rows (longest first), y = b·NH + h. Each warp keeps,
// per row group r, 16 queries (rows 64r + 16·warp … + 15 of the tile, so every warp has one group in
// each 64-row part and all meet the diagonal at the same key tiles) as A fragments, their running max
// and sum, and O (16 × hs) in registers; per key tile it computes S = q·kᵀ (16 × 64 per group), the
// online softmax on S in place, and O += P·v with P as the A operand. With two groups every B fragment
// read from shared memory (ldmatrix) feeds two mma instructions (FlashAttention-2's 128-query blocks).
template <int kHeadChunks, int kRowGroups>
__global__ void __launch_bounds__(kThreads, query_min_blocks_per_sm(kHeadChunks, kRowGroups))
    flash_forward_kernel(bf16* out, float* lse, const bf16* qkv, int64_t T, int64_t C, int64_t NH, float scale) {
  constexpr int kHeadSize = kHeadChunks * 16, kHeadTiles = kHeadSize / 8, kKeyTiles = kTile / 8;
  static_assert(kRowGroups == 1 || (kRowGroups == 2 && kHeadChunks <= kMaxRowGroupsHeadChunks),
                "two row groups fit in registers up to hs = 64");
  extern __shared__ __align__(128) unsigned char shared_memory[];
  const KeyValueShared sh(shared_memory, kHeadSize);
  // Named, not bound (C++17: a lambda below cannot capture structured bindings).
  const BlockPlace place = block_place(T, NH, /*longest_first=*/true, query_tile_rows(kRowGroups));
  const int64_t b = place.b, h = place.h, query_tile = place.tile;
  const int lane = place.lane, row0 = place.row0, g = lane / 4, t = lane % 4;
  const int64_t row_stride = 3 * C, tile_query = query_tile * query_tile_rows(kRowGroups);
  const bf16* head = qkv + b * T * row_stride + h * kHeadSize;

  uint32_t q[kRowGroups][kHeadChunks][4];
#pragma unroll
  for (int r = 0; r < kRowGroups; ++r) {
    load_a_rows<kHeadChunks>(q[r], head, row_stride, tile_query + r * kTile + row0, T, lane);
  }
  float o[kRowGroups][kHeadTiles][4] = {};
  // Rows g and g + 8 of each group: the running maximum of the raw scores, and the lane's share of
  // the running sum.
  float running_max[kRowGroups][2], running_sum[kRowGroups][2] = {};
#pragma unroll
  for (int r = 0; r < kRowGroups; ++r) running_max[r][0] = running_max[r][1] = -INFINITY;
  const float scale_log2 = scale * kLog2e;

  // Key tile n lies on group r's diagonal when n = query_tile·kRowGroups + r; groups before that one
  // have only earlier queries, all masked, and sit the tile out (with two groups: group 0 in the last
  // key tile). Group r's rows start where its diagonal tile does, so the mask compares offsets.
  const auto process_key_tile = [&](auto first_group, const bf16* k, const bf16* v, int diagonal_group) {
    constexpr int kFirstGroup = decltype(first_group)::value;
    float s[kRowGroups][kKeyTiles][4] = {};
    multiply_groups_by_rows<kFirstGroup>(s, q, k, 0, lane);
#pragma unroll
    for (int r = kFirstGroup; r < kRowGroups; ++r) {
      // Only the diagonal tile has keys after a query (or past T, which come after every query before
      // T). Key 64·n ≤ every query of the group is visible, so the new maxima are finite. Maxima are
      // kept in raw scores (scale > 0 keeps their order).
      if (r == diagonal_group) {
#pragma unroll
        for (int j = 0; j < kKeyTiles; ++j) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            if (8 * j + 2 * t + e % 2 > row0 + g + 8 * (e / 2)) s[r][j][e] = -INFINITY;
          }
        }
      }
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int j = 0; j < kKeyTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) tile_max[e / 2] = fmaxf(tile_max[e / 2], s[r][j][e]);
      }
      float correction[2], scaled_max[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const float new_max = fmaxf(running_max[r][i], group_max(tile_max[i]));
        correction[i] = exp2_approx((running_max[r][i] - new_max) * scale_log2);  // 0 on the first tile
        running_max[r][i] = new_max;
        running_sum[r][i] *= correction[i];
        scaled_max[i] = new_max * scale_log2;
      }
#pragma unroll
      for (int f = 0; f < kHeadTiles; ++f) {
#pragma unroll
        for (int e = 0; e < 4; ++e) o[r][f][e] *= correction[e / 2];
      }
#pragma unroll
      for (int j = 0; j < kKeyTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[r][j][e] = exp2_approx(s[r][j][e] * scale_log2 - scaled_max[e / 2]);  // masked: 2^−∞ = 0
          running_sum[r][e / 2] += s[r][j][e];
        }
      }
    }
    multiply_groups_accumulators_by<kFirstGroup>(o, s, v, 0, lane);  // O += P (16 × 64, bf16) · v (64 × hs)
  };

  const int64_t first_diagonal = query_tile * kRowGroups;
  const int64_t last_key_tile = last_key_tile_met(first_diagonal + kRowGroups - 1, T);
  const auto copy_key_tile = [&](int64_t tile) { copy_key_value_tile_async<kHeadSize>(sh, head, C, tile, T); };
  copy_key_tile(0);
  for (int64_t key_tile = 0; key_tile <= last_key_tile; ++key_tile) {
    const bf16 *k = in_stage(sh.k, sh.stage_bytes, key_tile), *v = in_stage(sh.v, sh.stage_bytes, key_tile);
    begin_tile(key_tile, key_tile < last_key_tile, copy_key_tile);
    const int diagonal_group = static_cast<int>(key_tile - first_diagonal);  // 32 bits, as T / 64 is
    if (kRowGroups == 2 && diagonal_group == 1) {
      process_key_tile(std::integral_constant<int, kRowGroups - 1>{}, k, v, diagonal_group);
    } else {
      process_key_tile(std::integral_constant<int, 0>{}, k, v, diagonal_group);
    }
  }
#pragma unroll
  for (int r = 0; r < kRowGroups; ++r) {
    const int64_t first_query = tile_query + r * kTile + row0;
    const float sum_low = group_sum(running_sum[r][0]), sum_high = group_sum(running_sum[r][1]);
    store_rows<kHeadTiles>(out + b * T * C + h * kHeadSize, C, o[r], 1.0f / sum_low, 1.0f / sum_high, first_query, T,
                           lane, /*overwrite=*/true);
    const int64_t query_low = first_query + g, query_high = query_low + 8;
    if (t == 0) {
      float* head_lse = lse + (b * NH + h) * T;
      if (query_low < T) head_lse[query_low] = running_max[r][0] * scale + logf(sum_low);
      if (query_high < T) head_lse[query_high] = running_max[r][1] * scale + logf(sum_high);
    }
  }
}

// delta[(b·NH + h)·T + t] = Σ_d dO·O over the head's channels. A row (hs contiguous channels of dO and
// of O) belongs to kLanesPerRow lanes, the power of two ≥ hs / 8: lane i reads channels 8i … 8i + 7 of
// both as one 16-byte vector each (flash_attention_backward checks 16-byte alignment; hs is a multiple
// of 16), and the row's lanes add their dots by shuffles, in a fixed order.
template <int kLanesPerRow>
__global__ void __launch_bounds__(kThreads) flash_delta_kernel(float* delta, const bf16* dout, const bf16* out,
                                                               int64_t rows, int64_t T, int64_t C, int64_t NH,
                                                               int head_size) {
  static_assert(kLanesPerRow <= kWarpSize && (kLanesPerRow & (kLanesPerRow - 1)) == 0, "a row's lanes share a warp");
  constexpr int kRowsPerBlock = kThreads / kLanesPerRow;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kLanesPerRow;
  const int channel = static_cast<int>(threadIdx.x % kLanesPerRow) * kVectorElements;
  float dot = 0.0f;
  if (row < rows && channel < head_size) {
    const int64_t t = row % T, h = (row / T) % NH, b = row / (T * NH);
    const int64_t offset = (b * T + t) * C + h * head_size + channel;
    float d[kVectorElements], o[kVectorElements];
    load_floats<kVectorElements>(d, dout + offset);
    load_floats<kVectorElements>(o, out + offset);
#pragma unroll
    for (int k = 0; k < kVectorElements; ++k) dot += d[k] * o[k];
  }
  // Every lane takes part (rows past the end add zeros), so the shuffles see the whole warp.
#pragma unroll
  for (int width = kLanesPerRow / 2; width > 0; width /= 2) dot += __shfl_xor_sync(kFullWarp, dot, width);
  if (row < rows && threadIdx.x % kLanesPerRow == 0) delta[row] = dot;
}

// dK and dV. Grid: x = key tiles (early keys, which see the most queries, first), y = b·NH + h.
// Each warp keeps its 16 keys and values (A fragments) and dK, dV (16 × hs each) in registers; per
// query tile from the diagonal on, and per half of it, it computes the transposed scores Sᵀ = k·qᵀ
// and dPᵀ = v·dOᵀ (16 keys × 32 queries), then Pᵀ = exp(scale·Sᵀ − lse) and
// dSᵀ = scale · Pᵀ ∘ (dPᵀ − delta) in place, and adds Pᵀ·dO to dV and dSᵀ·q to dK.
template <int kHeadChunks>
__global__ void __launch_bounds__(kThreads, min_blocks_per_sm(kHeadChunks))
    flash_backward_key_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* delta,
                              int64_t T, int64_t C, int64_t NH, float scale, bool overwrite) {
  constexpr int kHeadSize = kHeadChunks * 16, kHeadTiles = kHeadSize / 8, kQueryTiles = kHalf / 8;
  extern __shared__ __align__(128) unsigned char shared_memory[];
  const QueryShared sh(shared_memory, kHeadSize);
  const int64_t tiles = (T + kTile - 1) / kTile;
  const auto [b, h, key_tile, warp, lane, row0] = block_place(T, NH, /*longest_first=*/false);
  const int g = lane / 4, t = lane % 4;
  const int64_t row_stride = 3 * C, first_key = key_tile * kTile + row0;
  const bf16* head = qkv + b * T * row_stride + h * kHeadSize;
  const bf16* dout_head = dout + b * T * C + h * kHeadSize;
  const float* lse_head = lse + (b * NH + h) * T;
  const float* delta_head = delta + (b * NH + h) * T;

  uint32_t k[kHeadChunks][4], v[kHeadChunks][4];
  load_a_rows<kHeadChunks>(k, head + C, row_stride, first_key, T, lane);
  load_a_rows<kHeadChunks>(v, head + 2 * C, row_stride, first_key, T, lane);
  float dk[kHeadTiles][4] = {}, dv[kHeadTiles][4] = {};
  const float scale_log2 = scale * kLog2e;

  // A query tile's q, dO, lse and delta, as one group of copies (lse and delta zero past T).
  const auto copy_query_tile = [&](int64_t tile) {
    const int64_t first_query = tile * kTile;
    copy_rows_async<kHeadSize>(in_stage(sh.q, sh.stage_bytes, tile), head, row_stride, first_query, T);
    copy_rows_async<kHeadSize>(in_stage(sh.dout, sh.stage_bytes, tile), dout_head, C, first_query, T);
    if (threadIdx.x < kTile) {
      const int64_t query = first_query + threadIdx.x, source = query < T ? query : 0;
      copy_async<4>(in_stage(sh.lse, sh.stage_bytes, tile) + threadIdx.x, lse_head + source, query < T);
      copy_async<4>(in_stage(sh.delta, sh.stage_bytes, tile) + threadIdx.x, delta_head + source, query < T);
    }
    commit_async_copies();
  };
  copy_query_tile(key_tile);
  for (int64_t query_tile = key_tile; query_tile < tiles; ++query_tile) {
    const int64_t first_query = query_tile * kTile;
    const bf16* q = in_stage(sh.q, sh.stage_bytes, query_tile);
    const bf16* dout_rows = in_stage(sh.dout, sh.stage_bytes, query_tile);
    const float* tile_lse = in_stage(sh.lse, sh.stage_bytes, query_tile);
    const float* tile_delta = in_stage(sh.delta, sh.stage_bytes, query_tile);
    begin_tile(query_tile, query_tile + 1 < tiles, copy_query_tile);
    // Queries before a key (the diagonal tile only; the offsets within the tile compare, as it starts
    // at the same row on both sides) or past T (the last tile) have P = 0, and so dS = 0.
    const bool diagonal = query_tile == key_tile, masked = diagonal || first_query + kTile > T;
    const int queries_left = static_cast<int>(T - first_query < kTile ? T - first_query : kTile);

#pragma unroll 1
    for (int half = 0; half < 2; ++half) {
      const int column0 = half * kHalf;
      float s[kQueryTiles][4] = {}, dp[kQueryTiles][4] = {};
      multiply_by_rows(s, k, q, column0, lane);
      multiply_by_rows(dp, v, dout_rows, column0, lane);
#pragma unroll
      for (int j = 0; j < kQueryTiles; ++j) {
#pragma unroll
        for (int i = 0; i < 2; ++i) {  // the lane's two queries (columns) of accumulator tile j
          const int column = column0 + 8 * j + 2 * t + i;
          const float lse2 = tile_lse[column] * kLog2e, query_delta = tile_delta[column];
#pragma unroll
          for (int e = i; e < 4; e += 2) {
            const bool visible =
                !masked || (column < queries_left && (!diagonal || row0 + g + 8 * (e / 2) <= column));
            const float probability = visible ? exp2_approx(s[j][e] * scale_log2 - lse2) : 0.0f;
            dp[j][e] = scale * probability * (dp[j][e] - query_delta);
            s[j][e] = probability;
          }
        }
      }
      // dV += Pᵀ (16 × 32, bf16) · dO (32 × hs); dK += dSᵀ · q.
      multiply_accumulators_by(dv, s, dout_rows, column0, lane);
      multiply_accumulators_by(dk, dp, q, column0, lane);
    }
  }
  bf16* dk_head = dqkv + b * T * row_stride + C + h * kHeadSize;
  store_rows<kHeadTiles>(dk_head, row_stride, dk, 1.0f, 1.0f, first_key, T, lane, overwrite);
  store_rows<kHeadTiles>(dk_head + C, row_stride, dv, 1.0f, 1.0f, first_key, T, lane, overwrite);
}

// dQ. Grid: x = query tiles of 64·kRowGroups rows (longest first), y = b·NH + h. Each warp keeps, per row
// group (placed as in the forward kernel), its 16 queries and their dO (A fragments), lse and delta, and
// dQ (16 × hs) in registers; per key tile up to the diagonal, and per half of it, it computes S = q·kᵀ and
// dP = dO·vᵀ (16 × 32 per group), then P and dS = scale · P ∘ (dP − delta) in place, and adds dS·k to dQ.
// With two groups every B fragment read from shared memory feeds two mma instructions.
template <int kHeadChunks, int kRowGroups>
__global__ void __launch_bounds__(kThreads, query_min_blocks_per_sm(kHeadChunks, kRowGroups))
    flash_backward_query_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* delta,
                                int64_t T, int64_t C, int64_t NH, float scale, bool overwrite) {
  constexpr int kHeadSize = kHeadChunks * 16, kHeadTiles = kHeadSize / 8, kKeyTiles = kHalf / 8;
  static_assert(kRowGroups == 1 || (kRowGroups == 2 && kHeadChunks <= kMaxRowGroupsHeadChunks),
                "two row groups fit in registers up to hs = 64");
  extern __shared__ __align__(128) unsigned char shared_memory[];
  const KeyValueShared sh(shared_memory, kHeadSize);
  // Named, not bound (C++17: a lambda below cannot capture structured bindings).
  const BlockPlace place = block_place(T, NH, /*longest_first=*/true, query_tile_rows(kRowGroups));
  const int64_t b = place.b, h = place.h, query_tile = place.tile;
  const int lane = place.lane, row0 = place.row0, g = lane / 4, t = lane % 4;
  const int64_t row_stride = 3 * C, tile_query = query_tile * query_tile_rows(kRowGroups);
  const bf16* head = qkv + b * T * row_stride + h * kHeadSize;
  const float* lse_head = lse + (b * NH + h) * T;
  const float* delta_head = delta + (b * NH + h) * T;

  uint32_t q[kRowGroups][kHeadChunks][4], dout_rows[kRowGroups][kHeadChunks][4];
  // The rows' log-sum-exp in base 2, as the probabilities are formed: P = 2^(scale·log2 e·s − log2 e·lse).
  float row_lse2[kRowGroups][2], row_delta[kRowGroups][2];
#pragma unroll
  for (int r = 0; r < kRowGroups; ++r) {
    const int64_t first_query = tile_query + r * kTile + row0;
    load_a_rows<kHeadChunks>(q[r], head, row_stride, first_query, T, lane);
    load_a_rows<kHeadChunks>(dout_rows[r], dout + b * T * C + h * kHeadSize, C, first_query, T, lane);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int64_t query = first_query + g + 8 * i;
      row_lse2[r][i] = query < T ? lse_head[query] * kLog2e : 0.0f;
      row_delta[r][i] = query < T ? delta_head[query] : 0.0f;
    }
  }
  float dq[kRowGroups][kHeadTiles][4] = {};
  const float scale_log2 = scale * kLog2e;

  // Keys after a query: the diagonal tile of its group only (the offsets within the tile compare; keys
  // past T come after every query before T), and every tile after it. Rows past T are not stored (their
  // q and dO rows are zero, so their dS is 0 anyway).
  const auto process_half = [&](auto first_group, const bf16* k, const bf16* v, int column0, int diagonal_group) {
    constexpr int kFirstGroup = decltype(first_group)::value;
    float s[kRowGroups][kKeyTiles][4] = {}, dp[kRowGroups][kKeyTiles][4] = {};
    multiply_groups_by_rows<kFirstGroup>(s, q, k, column0, lane);
    multiply_groups_by_rows<kFirstGroup>(dp, dout_rows, v, column0, lane);
#pragma unroll
    for (int r = kFirstGroup; r < kRowGroups; ++r) {
#pragma unroll
      for (int j = 0; j < kKeyTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const bool visible = r != diagonal_group || column0 + 8 * j + 2 * t + e % 2 <= row0 + g + 8 * (e / 2);
          const float probability = visible ? exp2_approx(s[r][j][e] * scale_log2 - row_lse2[r][e / 2]) : 0.0f;
          dp[r][j][e] = scale * probability * (dp[r][j][e] - row_delta[r][e / 2]);
        }
      }
    }
    multiply_groups_accumulators_by<kFirstGroup>(dq, dp, k, column0, lane);  // dQ += dS (16 × 32, bf16) · k
  };

  const int64_t first_diagonal = query_tile * kRowGroups;
  const int64_t last_key_tile = last_key_tile_met(first_diagonal + kRowGroups - 1, T);
  const auto copy_key_tile = [&](int64_t tile) { copy_key_value_tile_async<kHeadSize>(sh, head, C, tile, T); };
  copy_key_tile(0);
  for (int64_t key_tile = 0; key_tile <= last_key_tile; ++key_tile) {
    const bf16 *k = in_stage(sh.k, sh.stage_bytes, key_tile), *v = in_stage(sh.v, sh.stage_bytes, key_tile);
    begin_tile(key_tile, key_tile < last_key_tile, copy_key_tile);
    // Groups before the one on the diagonal sit the tile out; on the diagonal, a group's queries may
    // all come before this half's keys, and it sits the half out.
    // (key_tile − first_diagonal: negative before the block's diagonal tiles; in 32 bits, as T / 64 is.)
    const int diagonal_group = static_cast<int>(key_tile - first_diagonal);

#pragma unroll 1
    for (int half = 0; half < 2; ++half) {
      const int column0 = half * kHalf;
      const int first_group =
          diagonal_group < 0 ? 0 : diagonal_group + (column0 > row0 + kRowsPerWarp - 1 ? 1 : 0);
      if (first_group >= kRowGroups) continue;
      if (kRowGroups == 2 && first_group == 1) {
        process_half(std::integral_constant<int, kRowGroups - 1>{}, k, v, column0, diagonal_group);
      } else {
        process_half(std::integral_constant<int, 0>{}, k, v, column0, diagonal_group);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowGroups; ++r) {
    store_rows<kHeadTiles>(dqkv + b * T * row_stride + h * kHeadSize, row_stride, dq[r], 1.0f, 1.0f,
                           tile_query + r * kTile + row0, T, lane, overwrite);
  }
}

unsigned tiles_along(int64_t T) { return static_cast<unsigned>((T + kTile - 1) / kTile); }

AttentionShape check_shape(const char* caller, int64_t B, int64_t T, int64_t C, int64_t NH) {
  return check_attention_shape(caller, B, T, C, NH, kMaxHeadSize, 16);
}

void check_aligned(const void* pointer, const char* name, const AttentionShape& s, const char* caller) {
  if (reinterpret_cast<uintptr_t>(pointer) % 16 != 0) {
    throw std::invalid_argument(shape_text(caller, s) + ": " + name + " is not 16-byte aligned");
  }
}

// Calls launch(std::integral_constant<int, head_size / 16>) for the instantiated head sizes.
template <class Launch>
void dispatch_head_chunks(int head_size, Launch&& launch) {
  switch (head_size / 16) {
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
  return head_size > 0 && head_size % 16 == 0 && head_size <= kMaxHeadSize;
}

namespace {
thread_local int query_rows_per_warp = kRowsPerWarp;

// Calls launch(chunks, row_groups) as integral constants: the head size's chunks of 16, and 2 row groups
// when the calling thread asked for 32 rows per warp and the head size takes them, else 1.
template <class Launch>
void dispatch_query_kernel(int head_size, Launch&& launch) {
  const bool two_groups = flash_query_rows_per_warp(head_size) == 2 * kRowsPerWarp;
  dispatch_head_chunks(head_size, [&](auto chunks) {
    if constexpr (decltype(chunks)::value <= kMaxRowGroupsHeadChunks) {
      if (two_groups) return launch(chunks, std::integral_constant<int, 2>{});
    }
    launch(chunks, std::integral_constant<int, 1>{});
  });
}

dim3 query_grid(int row_groups, int64_t T, int64_t B, int64_t NH) {
  const int64_t rows = query_tile_rows(row_groups);
  return dim3(static_cast<unsigned>((T + rows - 1) / rows), static_cast<unsigned>(B * NH));
}
}  // namespace

void set_flash_query_rows_per_warp(int rows) {
  if (rows != kRowsPerWarp && rows != 2 * kRowsPerWarp) {
    throw std::invalid_argument("set_flash_query_rows_per_warp: " + std::to_string(rows) +
                                " rows per warp; the query-major kernels take 16 or 32");
  }
  query_rows_per_warp = rows;
}

int flash_query_rows_per_warp(int64_t head_size) {
  return head_size <= kMaxRowGroupsHeadChunks * 16 ? query_rows_per_warp : kRowsPerWarp;
}

void flash_attention_forward(bf16* out, float* lse, const bf16* qkv, int64_t B, int64_t T, int64_t C, int64_t NH,
                             cudaStream_t stream) {
  const AttentionShape s = check_shape("flash_attention_forward", B, T, C, NH);
  if (B == 0 || T == 0) return;
  check_aligned(qkv, "qkv", s, "flash_attention_forward");
  check_aligned(out, "out", s, "flash_attention_forward");
  const std::string what = shape_text("flash_forward_kernel", s);
  dispatch_query_kernel(s.head_size, [&](auto chunks, auto row_groups) {
    constexpr int kHeadChunks = decltype(chunks)::value, kRowGroups = decltype(row_groups)::value;
    const size_t bytes = KeyValueShared(uintptr_t{0}, kHeadChunks * 16).bytes;
    allow_shared_memory(flash_forward_kernel<kHeadChunks, kRowGroups>, bytes, what);
    flash_forward_kernel<kHeadChunks, kRowGroups>
        <<<query_grid(kRowGroups, T, B, NH), kThreads, bytes, stream>>>(out, lse, qkv, T, C, NH, s.scale);
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
  check_aligned(out, "out", s, "flash_attention_backward");  // the delta kernel reads it in 16-byte vectors
  check_aligned(dout, "dout", s, "flash_attention_backward");
  check_aligned(dqkv, "dqkv", s, "flash_attention_backward");
  float* delta = static_cast<float*>(scratch);
  const int64_t rows = B * NH * T;
  // A row's lanes: the power of two ≥ hs / 8 (hs ≤ kMaxHeadSize = 128: at most 16).
  const auto launch_delta = [&](auto lanes_per_row) {
    constexpr int kLanesPerRow = decltype(lanes_per_row)::value, kRowsPerBlock = kThreads / kLanesPerRow;
    flash_delta_kernel<kLanesPerRow><<<static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock), kThreads, 0,
                                       stream>>>(delta, dout, out, rows, T, C, NH, s.head_size);
  };
  const int pieces = s.head_size / kVectorElements;
  if (pieces <= 2) {
    launch_delta(std::integral_constant<int, 2>{});
  } else if (pieces <= 4) {
    launch_delta(std::integral_constant<int, 4>{});
  } else if (pieces <= 8) {
    launch_delta(std::integral_constant<int, 8>{});
  } else {
    launch_delta(std::integral_constant<int, 16>{});
  }
  check_launch(shape_text("flash_delta_kernel", s));

  // The two kernels write disjoint parts of dqkv (k and v, and q), so their order does not matter.
  const std::string key_what = shape_text("flash_backward_key_kernel", s);
  const std::string query_what = shape_text("flash_backward_query_kernel", s);
  dispatch_head_chunks(s.head_size, [&](auto chunks) {
    constexpr int kHeadChunks = decltype(chunks)::value;
    const size_t key_bytes = QueryShared(uintptr_t{0}, kHeadChunks * 16).bytes;
    allow_shared_memory(flash_backward_key_kernel<kHeadChunks>, key_bytes, key_what);
    flash_backward_key_kernel<kHeadChunks><<<dim3(tiles_along(T), static_cast<unsigned>(B * NH)), kThreads, key_bytes,
                                             stream>>>(dqkv, dout, qkv, lse, delta, T, C, NH, s.scale, overwrite);
    check_launch(key_what);
  });
  dispatch_query_kernel(s.head_size, [&](auto chunks, auto row_groups) {
    constexpr int kHeadChunks = decltype(chunks)::value, kRowGroups = decltype(row_groups)::value;
    const size_t query_bytes = KeyValueShared(uintptr_t{0}, kHeadChunks * 16).bytes;
    allow_shared_memory(flash_backward_query_kernel<kHeadChunks, kRowGroups>, query_bytes, query_what);
    flash_backward_query_kernel<kHeadChunks, kRowGroups><<<query_grid(kRowGroups, T, B, NH), kThreads, query_bytes,
                                                           stream>>>(dqkv, dout, qkv, lse, delta, T, C, NH, s.scale,
                                                                     overwrite);
    check_launch(query_what);
  });
}

}  // namespace meridian::ops::cuda

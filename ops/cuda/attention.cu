#include "ops/cuda/attention.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "ops/cuda/attention_shape.cuh"
#include "ops/cuda/kernel_common.cuh"

namespace meridian::ops::cuda {

namespace {

using detail::allow_shared_memory;
using detail::AttentionShape;
using detail::check_attention_shape;
using detail::shape_text;
using detail::check_launch;
using detail::from_float;
using detail::kFullWarp;
using detail::kWarpSize;
using detail::to_float;
using detail::warp_max;
using detail::warp_sum;

// Work decomposition (all three kernels): a block of kWarps warps; a warp owns kRowsPerWarp rows
// (queries, or keys in the key-major backward kernel) and meets the other side kWarpSize at a time,
// one per lane. A lane keeps kDimsPerLane output channels per row in registers (channels lane,
// lane + 32, …), which bounds the head size at 32 · kDimsPerLane = 128.
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;  // 16 queries (or keys) per block
constexpr int kTile = kWarpSize;                       // 32 keys (or queries) per tile, one per lane
constexpr int kDimsPerLane = 4;
static_assert(kDimsPerLane * kWarpSize == kAttentionMaxHeadSize, "head size bound");

// Pointers to head h of batch b in the fused (B, T, 3C) qkv layout; token t is t · 3C further on.
template <class Pointer>
struct HeadView {
  Pointer q, k, v;
};

template <class Pointer>
__device__ __forceinline__ HeadView<Pointer> head_view(Pointer qkv, int64_t b, int64_t h, int64_t T, int64_t C,
                                                       int head_size) {
  Pointer q = qkv + b * T * 3 * C + h * head_size;
  return {q, q + C, q + 2 * C};
}

// The last valid row (query or key) of a block starting at `first`.
__device__ __forceinline__ int64_t last_row(int64_t first, int64_t T) {
  return (first + kRowsPerBlock < T ? first + kRowsPerBlock : T) - 1;
}

// Loads rows first … first + rows − 1 of one head's q, k or v (row stride 3C) into shared memory as
// fp32, rows at `stride` floats apart, times `factor`; rows at or past T read as zero.
template <class Element>
__device__ void load_rows(float* tile, int stride, const Element* source, int64_t row_stride, int64_t first, int rows,
                          int64_t T, int head_size, float factor) {
  for (int i = threadIdx.x; i < rows * head_size; i += blockDim.x) {
    const int r = i / head_size;
    const int d = i % head_size;
    const int64_t t = first + r;
    tile[r * stride + d] = t < T ? factor * to_float(source[t * row_stride + d]) : 0.0f;
  }
}

// This lane's share (channels lane, lane + 32, …) of the dot product of two head rows; warp_sum
// of it is D = dO · O for the row.
template <class Element>
__device__ __forceinline__ float lane_dot(const Element* a, const Element* b, int head_size, int lane) {
  float dot = 0.0f;
  for (int d = lane; d < head_size; d += kWarpSize) dot += to_float(a[d]) * to_float(b[d]);
  return dot;
}

// ---------------------------------------------------------------------------------------------
// Forward. Grid (query blocks, B·NH). A block holds its 16 (pre-scaled) query rows in shared
// memory and walks the key tiles 0 … its last query, 32 keys at a time; lane c scores key c of
// the tile against the warp's 4 rows, the warp folds the tile into a running max and sum (online
// softmax), and each lane accumulates its channels of the output.

template <class Element>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(Element* out, float* lse, const Element* qkv,
                                                                     int64_t T, int64_t C, int64_t NH, int head_size,
                                                                     float scale) {
  extern __shared__ float shared[];
  const int padded = head_size + 1;  // lanes reading one channel of 32 different rows hit 32 banks
  float* q_rows = shared;                       // kRowsPerBlock × head_size
  float* k_tile = q_rows + kRowsPerBlock * head_size;  // kTile × padded
  float* v_tile = k_tile + kTile * padded;      // kTile × head_size

  const int64_t b = blockIdx.y / NH;
  const int64_t h = blockIdx.y % NH;
  // Late query blocks see the most keys: start them first so cheap blocks fill the tail.
  const int64_t first_query = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kRowsPerBlock;
  const int64_t row_stride = 3 * C;
  const HeadView<const Element*> head = head_view(qkv, b, h, T, C, head_size);
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;

  load_rows(q_rows, head_size, head.q, row_stride, first_query, kRowsPerBlock, T, head_size, scale);

  float row_max[kRowsPerWarp];
  float row_sum[kRowsPerWarp];
  float acc[kRowsPerWarp][kDimsPerLane];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.0f;
#pragma unroll
    for (int j = 0; j < kDimsPerLane; ++j) acc[r][j] = 0.0f;
  }

  const int64_t last_query = last_row(first_query, T);
  for (int64_t key_begin = 0; key_begin <= last_query; key_begin += kTile) {
    __syncthreads();  // the previous tile is consumed (and, the first time, q_rows is loaded)
    load_rows(k_tile, padded, head.k, row_stride, key_begin, kTile, T, head_size, 1.0f);
    load_rows(v_tile, head_size, head.v, row_stride, key_begin, kTile, T, head_size, 1.0f);
    __syncthreads();

    float scores[kRowsPerWarp] = {};
    for (int d = 0; d < head_size; ++d) {
      const float key_value = k_tile[lane * padded + d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) scores[r] += q_rows[(warp * kRowsPerWarp + r) * head_size + d] * key_value;
    }
    const int64_t key = key_begin + lane;
    float probs[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t t = first_query + warp * kRowsPerWarp + r;
      const bool visible = key <= t && t < T;
      const float score = visible ? scores[r] : -INFINITY;
      const float new_max = fmaxf(row_max[r], warp_max(score));  // the same in every lane
      probs[r] = 0.0f;
      if (new_max == -INFINITY) continue;  // no visible key yet (a row past T): nothing to fold
      probs[r] = visible ? expf(score - new_max) : 0.0f;
      // Earlier tiles were exponentiated against a smaller max; exp(−∞) = 0 on the first tile.
      const float correction = expf(row_max[r] - new_max);
      row_sum[r] = row_sum[r] * correction + warp_sum(probs[r]);
      row_max[r] = new_max;
#pragma unroll
      for (int j = 0; j < kDimsPerLane; ++j) acc[r][j] *= correction;
    }
    // acc[r][j] += Σ_c p[r][c] · v[c][lane + 32j], p[r][c] broadcast from lane c.
    for (int c = 0; c < kTile; ++c) {
      float p[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) p[r] = __shfl_sync(kFullWarp, probs[r], c);
#pragma unroll
      for (int j = 0; j < kDimsPerLane; ++j) {
        const int d = lane + j * kWarpSize;
        if (d >= head_size) break;
        const float value = v_tile[c * head_size + d];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) acc[r][j] += p[r] * value;
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t t = first_query + warp * kRowsPerWarp + r;
    if (t >= T) continue;
    const float inverse_sum = 1.0f / row_sum[r];
    Element* out_row = out + (b * T + t) * C + h * head_size;
#pragma unroll
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int d = lane + j * kWarpSize;
      if (d < head_size) out_row[d] = from_float<Element>(acc[r][j] * inverse_sum);
    }
    if (lane == 0) lse[(b * NH + h) * T + t] = row_max[r] + logf(row_sum[r]);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, dQ (query-major). Grid (query blocks, B·NH), the forward's shape: per key tile,
// recompute P = exp(scale·q·k − lse) and dP = dO·v for the warp's rows (lane = key), form
// dS = P ∘ (dP − D) with D = rowsum(dO ∘ O), and accumulate dQ = scale · dS · K in registers.

template <class Element>
__global__ void __launch_bounds__(kThreads) attention_backward_query_kernel(Element* dqkv, const Element* dout,
                                                                            const Element* qkv, const Element* out,
                                                                            const float* lse, int64_t T, int64_t C,
                                                                            int64_t NH, int head_size, float scale) {
  extern __shared__ float shared[];
  const int padded = head_size + 1;
  float* q_rows = shared;                               // kRowsPerBlock × head_size, scaled
  float* dout_rows = q_rows + kRowsPerBlock * head_size;  // kRowsPerBlock × head_size
  float* k_tile = dout_rows + kRowsPerBlock * head_size;  // kTile × padded
  float* v_tile = k_tile + kTile * padded;              // kTile × padded

  const int64_t b = blockIdx.y / NH;
  const int64_t h = blockIdx.y % NH;
  const int64_t first_query = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kRowsPerBlock;
  const int64_t row_stride = 3 * C;
  const HeadView<const Element*> head = head_view(qkv, b, h, T, C, head_size);
  const Element* dout_head = dout + b * T * C + h * head_size;
  const Element* out_head = out + b * T * C + h * head_size;
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;

  load_rows(q_rows, head_size, head.q, row_stride, first_query, kRowsPerBlock, T, head_size, scale);
  load_rows(dout_rows, head_size, dout_head, C, first_query, kRowsPerBlock, T, head_size, 1.0f);

  // D and lse of the warp's rows (zero past T, where every probability is masked anyway).
  float delta[kRowsPerWarp];
  float row_lse[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t t = first_query + warp * kRowsPerWarp + r;
    delta[r] = warp_sum(t < T ? lane_dot(dout_head + t * C, out_head + t * C, head_size, lane) : 0.0f);
    row_lse[r] = t < T ? lse[(b * NH + h) * T + t] : 0.0f;
  }

  float dq[kRowsPerWarp][kDimsPerLane] = {};
  const int64_t last_query = last_row(first_query, T);
  for (int64_t key_begin = 0; key_begin <= last_query; key_begin += kTile) {
    __syncthreads();
    load_rows(k_tile, padded, head.k, row_stride, key_begin, kTile, T, head_size, 1.0f);
    load_rows(v_tile, padded, head.v, row_stride, key_begin, kTile, T, head_size, 1.0f);
    __syncthreads();

    float scores[kRowsPerWarp] = {};
    float dprobs[kRowsPerWarp] = {};
    for (int d = 0; d < head_size; ++d) {
      const float key_value = k_tile[lane * padded + d];
      const float value = v_tile[lane * padded + d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        scores[r] += q_rows[(warp * kRowsPerWarp + r) * head_size + d] * key_value;
        dprobs[r] += dout_rows[(warp * kRowsPerWarp + r) * head_size + d] * value;
      }
    }
    const int64_t key = key_begin + lane;
    float dscores[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t t = first_query + warp * kRowsPerWarp + r;
      const bool visible = key <= t && t < T;
      const float prob = visible ? expf(scores[r] - row_lse[r]) : 0.0f;
      dscores[r] = prob * (dprobs[r] - delta[r]);
    }
    for (int c = 0; c < kTile; ++c) {
      float ds[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) ds[r] = __shfl_sync(kFullWarp, dscores[r], c);
#pragma unroll
      for (int j = 0; j < kDimsPerLane; ++j) {
        const int d = lane + j * kWarpSize;
        if (d >= head_size) break;
        const float key_value = k_tile[c * padded + d];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) dq[r][j] += ds[r] * key_value;
      }
    }
  }

  HeadView<Element*> grad = head_view(dqkv, b, h, T, C, head_size);
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t t = first_query + warp * kRowsPerWarp + r;
    if (t >= T) continue;
    Element* dq_row = grad.q + t * row_stride;
#pragma unroll
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int d = lane + j * kWarpSize;
      if (d < head_size) dq_row[d] = from_float<Element>(to_float(dq_row[d]) + scale * dq[r][j]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, dK and dV (key-major). Grid (key blocks, B·NH). A block holds 16 key and value rows
// and walks the query tiles that can see them (from the tile holding its first key to T), 32
// queries at a time, lane = query: recompute P and dP, dS = P ∘ (dP − D), and accumulate
// dV = Pᵀ · dO and dK = dSᵀ · (scale · Q) in registers. D for the tile's queries is recomputed
// from dO and O (one dot product per query per key block: 1/32 of the tile's other work).

template <class Element>
__global__ void __launch_bounds__(kThreads) attention_backward_key_kernel(Element* dqkv, const Element* dout,
                                                                          const Element* qkv, const Element* out,
                                                                          const float* lse, int64_t T, int64_t C,
                                                                          int64_t NH, int head_size, float scale) {
  extern __shared__ float shared[];
  const int padded = head_size + 1;
  float* k_rows = shared;                               // kRowsPerBlock × head_size
  float* v_rows = k_rows + kRowsPerBlock * head_size;   // kRowsPerBlock × head_size
  float* q_tile = v_rows + kRowsPerBlock * head_size;   // kTile × padded, scaled
  float* dout_tile = q_tile + kTile * padded;           // kTile × padded
  float* lse_tile = dout_tile + kTile * padded;         // kTile
  float* delta_tile = lse_tile + kTile;                 // kTile

  const int64_t b = blockIdx.y / NH;
  const int64_t h = blockIdx.y % NH;
  const int64_t first_key = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock;  // early keys: most work, first
  const int64_t row_stride = 3 * C;
  const HeadView<const Element*> head = head_view(qkv, b, h, T, C, head_size);
  const Element* dout_head = dout + b * T * C + h * head_size;
  const Element* out_head = out + b * T * C + h * head_size;
  const float* lse_head = lse + (b * NH + h) * T;
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;

  load_rows(k_rows, head_size, head.k, row_stride, first_key, kRowsPerBlock, T, head_size, 1.0f);
  load_rows(v_rows, head_size, head.v, row_stride, first_key, kRowsPerBlock, T, head_size, 1.0f);

  float dk[kRowsPerWarp][kDimsPerLane] = {};
  float dv[kRowsPerWarp][kDimsPerLane] = {};
  for (int64_t query_begin = first_key / kTile * kTile; query_begin < T; query_begin += kTile) {
    __syncthreads();
    load_rows(q_tile, padded, head.q, row_stride, query_begin, kTile, T, head_size, scale);
    load_rows(dout_tile, padded, dout_head, C, query_begin, kTile, T, head_size, 1.0f);
    // D = rowsum(dO ∘ O) of the tile's queries, one warp per query in turn.
    for (int c = warp; c < kTile; c += kWarps) {
      const int64_t t = query_begin + c;
      const float dot = warp_sum(t < T ? lane_dot(dout_head + t * C, out_head + t * C, head_size, lane) : 0.0f);
      if (lane == 0) {
        delta_tile[c] = dot;
        lse_tile[c] = t < T ? lse_head[t] : 0.0f;
      }
    }
    __syncthreads();

    float scores[kRowsPerWarp] = {};
    float dprobs[kRowsPerWarp] = {};
    for (int d = 0; d < head_size; ++d) {
      const float query_value = q_tile[lane * padded + d];
      const float dout_value = dout_tile[lane * padded + d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        scores[r] += query_value * k_rows[(warp * kRowsPerWarp + r) * head_size + d];
        dprobs[r] += dout_value * v_rows[(warp * kRowsPerWarp + r) * head_size + d];
      }
    }
    const int64_t t = query_begin + lane;
    float probs[kRowsPerWarp];
    float dscores[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t key = first_key + warp * kRowsPerWarp + r;
      const bool visible = key <= t && t < T;  // key ≤ t < T also keeps keys past T out
      probs[r] = visible ? expf(scores[r] - lse_tile[lane]) : 0.0f;
      dscores[r] = probs[r] * (dprobs[r] - delta_tile[lane]);
    }
    for (int c = 0; c < kTile; ++c) {
      float p[kRowsPerWarp];
      float ds[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        p[r] = __shfl_sync(kFullWarp, probs[r], c);
        ds[r] = __shfl_sync(kFullWarp, dscores[r], c);
      }
#pragma unroll
      for (int j = 0; j < kDimsPerLane; ++j) {
        const int d = lane + j * kWarpSize;
        if (d >= head_size) break;
        const float dout_value = dout_tile[c * padded + d];
        const float query_value = q_tile[c * padded + d];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) {
          dv[r][j] += p[r] * dout_value;
          dk[r][j] += ds[r] * query_value;
        }
      }
    }
  }

  HeadView<Element*> grad = head_view(dqkv, b, h, T, C, head_size);
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t key = first_key + warp * kRowsPerWarp + r;
    if (key >= T) continue;
    Element* dk_row = grad.k + key * row_stride;
    Element* dv_row = grad.v + key * row_stride;
#pragma unroll
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int d = lane + j * kWarpSize;
      if (d >= head_size) break;
      dk_row[d] = from_float<Element>(to_float(dk_row[d]) + dk[r][j]);
      dv_row[d] = from_float<Element>(to_float(dv_row[d]) + dv[r][j]);
    }
  }
}

unsigned blocks_along(int64_t T) { return static_cast<unsigned>((T + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

template <class Element>
void attention_forward(Element* out, float* lse, const Element* qkv, int64_t B, int64_t T, int64_t C, int64_t NH,
                       cudaStream_t stream) {
  const AttentionShape s = check_attention_shape("attention_forward", B, T, C, NH);
  if (B == 0 || T == 0) return;
  const std::string what = shape_text("attention_forward_kernel", s);
  const size_t bytes =
      sizeof(float) * (kRowsPerBlock * s.head_size + kTile * (s.head_size + 1) + kTile * s.head_size);
  allow_shared_memory(attention_forward_kernel<Element>, bytes, what);
  attention_forward_kernel<Element><<<dim3(blocks_along(T), static_cast<unsigned>(B * NH)), kThreads, bytes, stream>>>(
      out, lse, qkv, T, C, NH, s.head_size, s.scale);
  check_launch(what);
}

template <class Element>
void attention_backward(Element* dqkv, const Element* dout, const Element* qkv, const Element* out, const float* lse,
                        int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream) {
  const AttentionShape s = check_attention_shape("attention_backward", B, T, C, NH);
  if (B == 0 || T == 0) return;
  const dim3 grid(blocks_along(T), static_cast<unsigned>(B * NH));
  const size_t padded_tile = static_cast<size_t>(kTile) * (s.head_size + 1);
  const size_t rows = static_cast<size_t>(kRowsPerBlock) * s.head_size;

  // The two kernels write disjoint parts of dqkv (q, and k/v), so their order does not matter.
  const std::string query_what = shape_text("attention_backward_query_kernel", s);
  const size_t query_bytes = sizeof(float) * (2 * rows + 2 * padded_tile);
  allow_shared_memory(attention_backward_query_kernel<Element>, query_bytes, query_what);
  attention_backward_query_kernel<Element><<<grid, kThreads, query_bytes, stream>>>(dqkv, dout, qkv, out, lse, T, C,
                                                                                    NH, s.head_size, s.scale);
  check_launch(query_what);

  const std::string key_what = shape_text("attention_backward_key_kernel", s);
  const size_t key_bytes = sizeof(float) * (2 * rows + 2 * padded_tile + 2 * kTile);
  allow_shared_memory(attention_backward_key_kernel<Element>, key_bytes, key_what);
  attention_backward_key_kernel<Element><<<grid, kThreads, key_bytes, stream>>>(dqkv, dout, qkv, out, lse, T, C, NH,
                                                                                s.head_size, s.scale);
  check_launch(key_what);
}

template void attention_forward<float>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
template void attention_forward<__nv_bfloat16>(__nv_bfloat16*, float*, const __nv_bfloat16*, int64_t, int64_t, int64_t,
                                               int64_t, cudaStream_t);
template void attention_backward<float>(float*, const float*, const float*, const float*, const float*, int64_t, int64_t,
                                        int64_t, int64_t, cudaStream_t);
template void attention_backward<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*,
                                                const __nv_bfloat16*, const float*, int64_t, int64_t, int64_t, int64_t,
                                                cudaStream_t);

}  // namespace meridian::ops::cuda

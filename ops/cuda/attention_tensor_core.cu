#include "ops/cuda/attention_tensor_core.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "ops/cuda/kernel_common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/matmul.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using bf16 = __nv_bfloat16;
using detail::from_float;
using detail::kWarpSize;
using detail::to_float;
using detail::warp_max;
using detail::warp_sum;

#define MERIDIAN_GRID_STRIDE_LOOP(i, n)                                                  \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// q, k, v (B, NH, T, hs) ← qkv (B, T, 3C): one thread per element of the three.
__global__ void split_heads_kernel(bf16* q, bf16* k, bf16* v, const bf16* qkv, int64_t B, int64_t T, int64_t C,
                                   int64_t NH) {
  const int64_t hs = C / NH, n = B * T * C;
  MERIDIAN_GRID_STRIDE_LOOP(i, n) {
    // i indexes (b, h, t, d) of the head-major layout.
    const int64_t d = i % hs, t = (i / hs) % T, h = (i / (hs * T)) % NH, b = i / (hs * T * NH);
    const int64_t from = (b * T + t) * 3 * C + h * hs + d;
    q[i] = qkv[from];
    k[i] = qkv[from + C];
    v[i] = qkv[from + 2 * C];
  }
}

// head-major (B, NH, T, hs) → token-major (B, T, C): out[b, t, h·hs + d] = y[b, h, t, d]. With
// `accumulate`, out += y instead (fp32 sum, one rounding); out_stride is out's row width (C or 3C)
// and out_offset the first column (0, C or 2C for the parts of dqkv).
__global__ void merge_heads_kernel(bf16* out, const bf16* y, int64_t B, int64_t T, int64_t C, int64_t NH,
                                   int64_t out_stride, int64_t out_offset, bool accumulate) {
  const int64_t hs = C / NH, n = B * T * C;
  MERIDIAN_GRID_STRIDE_LOOP(i, n) {
    const int64_t d = i % hs, t = (i / hs) % T, h = (i / (hs * T)) % NH, b = i / (hs * T * NH);
    bf16& target = out[(b * T + t) * out_stride + out_offset + h * hs + d];
    target = accumulate ? from_float<bf16>(to_float(target) + to_float(y[i])) : y[i];
  }
}

// (B, T, C) → head-major (B, NH, T, hs).
__global__ void split_one_kernel(bf16* y, const bf16* x, int64_t B, int64_t T, int64_t C, int64_t NH) {
  const int64_t hs = C / NH, n = B * T * C;
  MERIDIAN_GRID_STRIDE_LOOP(i, n) {
    const int64_t d = i % hs, t = (i / hs) % T, h = (i / (hs * T)) % NH, b = i / (hs * T * NH);
    y[i] = x[(b * T + t) * C + h * hs + d];
  }
}

#undef MERIDIAN_GRID_STRIDE_LOOP

// One warp per row r = (head, query t) of the (rows, T) scores (already scaled): P[r, j] =
// softmax over keys j ≤ t, 0 for j > t.
__global__ void causal_softmax_forward_kernel(bf16* probabilities, const float* scores, int64_t rows, int64_t T) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const int64_t t = row % T;
  const float* s = scores + row * T;
  bf16* p = probabilities + row * T;
  float max_score = -INFINITY;
  for (int64_t j = lane; j <= t; j += kWarpSize) max_score = fmaxf(max_score, s[j]);
  max_score = warp_max(max_score);
  float sum = 0.0f;
  for (int64_t j = lane; j <= t; j += kWarpSize) sum += expf(s[j] - max_score);
  sum = warp_sum(sum);
  const float inverse = 1.0f / sum;
  for (int64_t j = lane; j < T; j += kWarpSize)
    p[j] = from_float<bf16>(j <= t ? expf(s[j] - max_score) * inverse : 0.0f);
}

// dS[r, j] = scale · P[r, j] · (dP[r, j] − Σ_k P[r, k]·dP[r, k]) for j ≤ t, 0 above the diagonal.
// dS is the gradient of the unscaled scores q·kᵀ (the forward applied `scale` in the product).
__global__ void causal_softmax_backward_kernel(bf16* dscores, const float* dprobabilities, const bf16* probabilities,
                                               int64_t rows, int64_t T, float scale) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const int64_t t = row % T;
  const float* dp = dprobabilities + row * T;
  const bf16* p = probabilities + row * T;
  bf16* ds = dscores + row * T;
  float dot = 0.0f;
  for (int64_t j = lane; j <= t; j += kWarpSize) dot += to_float(p[j]) * dp[j];
  dot = warp_sum(dot);
  for (int64_t j = lane; j < T; j += kWarpSize)
    ds[j] = from_float<bf16>(j <= t ? scale * to_float(p[j]) * (dp[j] - dot) : 0.0f);
}

constexpr int kRowsPerBlock = 8;  // warps per 256-thread block, one row each

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

void check_shape(const char* caller, int64_t B, int64_t T, int64_t C, int64_t NH) {
  if (B < 0 || T < 0 || C < 0 || NH <= 0 || C % NH != 0)
    throw std::invalid_argument(std::string(caller) + ": bad shape B=" + std::to_string(B) + " T=" +
                                std::to_string(T) + " C=" + std::to_string(C) + " NH=" + std::to_string(NH));
}

size_t head_bytes(int64_t B, int64_t T, int64_t C) { return static_cast<size_t>(B * T * C) * sizeof(bf16); }
size_t scores_bytes(int64_t B, int64_t T, int64_t NH) { return static_cast<size_t>(B * NH * T * T) * sizeof(float); }

// Carves consecutive, 256-byte aligned pieces out of the caller's scratch.
class Carver {
 public:
  explicit Carver(void* base) : next_(static_cast<char*>(base)) {}
  template <class T>
  T* take(size_t bytes) {
    T* out = reinterpret_cast<T*>(next_);
    next_ += (bytes + 255) / 256 * 256;
    return out;
  }

 private:
  char* next_;
};

struct Heads {
  bf16 *q, *k, *v;
};

// Carves q, k, v (B, NH, T, hs) from the scratch and fills them from qkv: the first step of both passes
// (backward recomputes them rather than keeping them from forward).
Heads split_heads(Carver& carve, const bf16* qkv, int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream) {
  Heads heads{carve.take<bf16>(head_bytes(B, T, C)), carve.take<bf16>(head_bytes(B, T, C)),
              carve.take<bf16>(head_bytes(B, T, C))};
  split_heads_kernel<<<launch::grid_stride_blocks(B * T * C), launch::kThreadsPerBlock, 0, stream>>>(
      heads.q, heads.k, heads.v, qkv, B, T, C, NH);
  MERIDIAN_CUDA_CHECK_LAUNCH("attention_tc split_heads");
  return heads;
}

}  // namespace

size_t attention_tc_probabilities_bytes(int64_t B, int64_t T, int64_t NH) {
  return static_cast<size_t>(B * NH * T * T) * sizeof(bf16);
}

size_t attention_tc_forward_scratch_bytes(int64_t B, int64_t T, int64_t C, int64_t NH) {
  return 4 * (head_bytes(B, T, C) + 256) + scores_bytes(B, T, NH) + 256;  // q, k, v, y; scores
}

size_t attention_tc_backward_scratch_bytes(int64_t B, int64_t T, int64_t C, int64_t NH) {
  // q, k, v, dy, dq, dk, dv; dP (fp32) and dS (bf16)
  return 7 * (head_bytes(B, T, C) + 256) + scores_bytes(B, T, NH) + attention_tc_probabilities_bytes(B, T, NH) + 512;
}

void attention_tc_forward(bf16* out, bf16* probabilities, const bf16* qkv, void* scratch, int64_t B, int64_t T,
                          int64_t C, int64_t NH, cudaStream_t stream) {
  check_shape("attention_tc_forward", B, T, C, NH);
  if (B == 0 || T == 0 || C == 0) return;
  const int64_t hs = C / NH, BH = B * NH;
  Carver carve(scratch);
  const auto [q, k, v] = split_heads(carve, qkv, B, T, C, NH, stream);
  bf16* y = carve.take<bf16>(head_bytes(B, T, C));
  float* scores = carve.take<float>(scores_bytes(B, T, NH));
  const unsigned blocks = launch::grid_stride_blocks(B * T * C);
  // S (T×T per head) = scale · q · kᵀ, fp32 out. Entries above the diagonal are computed and ignored.
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  batched_matmul<float, bf16>(scores, q, k, BH, T, T, hs, false, true, T * hs, T * hs, T * T, scale, 0.0f, stream);
  causal_softmax_forward_kernel<<<row_blocks(BH * T), kRowsPerBlock * kWarpSize, 0, stream>>>(probabilities, scores,
                                                                                              BH * T, T);
  MERIDIAN_CUDA_CHECK_LAUNCH("attention_tc causal_softmax_forward");
  // y (T×hs per head) = P · v
  batched_matmul<bf16, bf16>(y, probabilities, v, BH, T, hs, T, false, false, T * T, T * hs, T * hs, 1.0f, 0.0f,
                             stream);
  merge_heads_kernel<<<blocks, launch::kThreadsPerBlock, 0, stream>>>(out, y, B, T, C, NH, C, 0, false);
  MERIDIAN_CUDA_CHECK_LAUNCH("attention_tc merge_heads");
}

void attention_tc_backward(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* probabilities, void* scratch,
                           int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream) {
  check_shape("attention_tc_backward", B, T, C, NH);
  if (B == 0 || T == 0 || C == 0) return;
  const int64_t hs = C / NH, BH = B * NH;
  Carver carve(scratch);
  const auto [q, k, v] = split_heads(carve, qkv, B, T, C, NH, stream);
  bf16* dy = carve.take<bf16>(head_bytes(B, T, C));
  bf16* dq = carve.take<bf16>(head_bytes(B, T, C));
  bf16* dk = carve.take<bf16>(head_bytes(B, T, C));
  bf16* dv = carve.take<bf16>(head_bytes(B, T, C));
  float* dprobabilities = carve.take<float>(scores_bytes(B, T, NH));
  bf16* dscores = carve.take<bf16>(attention_tc_probabilities_bytes(B, T, NH));
  const unsigned blocks = launch::grid_stride_blocks(B * T * C);
  split_one_kernel<<<blocks, launch::kThreadsPerBlock, 0, stream>>>(dy, dout, B, T, C, NH);
  MERIDIAN_CUDA_CHECK_LAUNCH("attention_tc split_one");
  // dP (T×T) = dy · vᵀ;  dv (T×hs) = Pᵀ · dy
  batched_matmul<float, bf16>(dprobabilities, dy, v, BH, T, T, hs, false, true, T * hs, T * hs, T * T, 1.0f, 0.0f,
                              stream);
  batched_matmul<bf16, bf16>(dv, probabilities, dy, BH, T, hs, T, true, false, T * T, T * hs, T * hs, 1.0f, 0.0f,
                             stream);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  causal_softmax_backward_kernel<<<row_blocks(BH * T), kRowsPerBlock * kWarpSize, 0, stream>>>(
      dscores, dprobabilities, probabilities, BH * T, T, scale);
  MERIDIAN_CUDA_CHECK_LAUNCH("attention_tc causal_softmax_backward");
  // dq (T×hs) = dS · k;  dk (T×hs) = dSᵀ · q
  batched_matmul<bf16, bf16>(dq, dscores, k, BH, T, hs, T, false, false, T * T, T * hs, T * hs, 1.0f, 0.0f, stream);
  batched_matmul<bf16, bf16>(dk, dscores, q, BH, T, hs, T, true, false, T * T, T * hs, T * hs, 1.0f, 0.0f, stream);
  merge_heads_kernel<<<blocks, launch::kThreadsPerBlock, 0, stream>>>(dqkv, dq, B, T, C, NH, 3 * C, 0, true);
  MERIDIAN_CUDA_CHECK_LAUNCH("attention_tc merge dq");
  merge_heads_kernel<<<blocks, launch::kThreadsPerBlock, 0, stream>>>(dqkv, dk, B, T, C, NH, 3 * C, C, true);
  MERIDIAN_CUDA_CHECK_LAUNCH("attention_tc merge dk");
  merge_heads_kernel<<<blocks, launch::kThreadsPerBlock, 0, stream>>>(dqkv, dv, B, T, C, NH, 3 * C, 2 * C, true);
  MERIDIAN_CUDA_CHECK_LAUNCH("attention_tc merge dv");
}

}  // namespace meridian::ops::cuda

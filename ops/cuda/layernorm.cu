#include "ops/cuda/layernorm.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/kernel_common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using detail::from_float;
using detail::kVectorElements;
using detail::kWarpSize;
using detail::load_floats;
using detail::store_floats;
using detail::to_float;
using detail::vector_aligned;
using detail::warp_sum;

// Forward and the input gradient: one warp per row, 8 rows (256 threads) per block. A row of
// GPT-2's C = 768…1600 is 3–7 16-byte loads per lane (24–50 elements; single elements when C is not a
// multiple of 8 or a pointer is not 16-byte aligned), and the row sums stay in registers and shuffles.
constexpr int kRowsPerBlock = launch::kThreadsPerBlock / kWarpSize;

// Parameter gradients: a block owns 32 channels (one warp across them) and 32 row lanes (warps).
constexpr int kChannelsPerBlock = 32;
constexpr int kRowLanes = 32;
constexpr int kParameterGradientThreads = kChannelsPerBlock * kRowLanes;

// The columns of a row a lane handles, kWidth (1, or 8 for 16-byte vectors) at a time: the warp walks
// the row in steps of 32·kWidth columns, the lane taking columns [c, c + kWidth). With kWidth = 8 the
// row length is a multiple of 8 and the pointers 16-byte aligned (checked by the launcher).
template <int kWidth, class Visit>
__device__ __forceinline__ void for_lane_columns(int64_t C, int lane, Visit visit) {
  for (int64_t c = int64_t{lane} * kWidth; c < C; c += int64_t{kWarpSize} * kWidth) visit(c);
}

template <class T, int kWidth>
__global__ void layernorm_forward_kernel(T* __restrict__ out, float* __restrict__ mean, float* __restrict__ rstd,
                                         const T* __restrict__ inp, const T* __restrict__ weight,
                                         const T* __restrict__ bias, int64_t N, int64_t C, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  if (row >= N) return;  // the whole warp leaves together, so the shuffles below see full warps
  const T* x = inp + row * C;
  // Two passes over a row that stays in L1/L2, as the CPU kernel: the centred variance avoids
  // E[x²] − E[x]²'s cancellation.
  float sum = 0.0f;
  for_lane_columns<kWidth>(C, lane, [&](int64_t c) {
    float xs[kWidth];
    load_floats(xs, x + c);
    for (int k = 0; k < kWidth; ++k) sum += xs[k];
  });
  const float row_mean = warp_sum(sum) / static_cast<float>(C);
  float squares = 0.0f;
  for_lane_columns<kWidth>(C, lane, [&](int64_t c) {
    float xs[kWidth];
    load_floats(xs, x + c);
    for (int k = 0; k < kWidth; ++k) squares += (xs[k] - row_mean) * (xs[k] - row_mean);
  });
  // 1/sqrtf (correctly rounded) rather than rsqrtf (2 ulp), to stay close to the CPU reference.
  const float row_rstd = 1.0f / sqrtf(warp_sum(squares) / static_cast<float>(C) + eps);
  T* y = out + row * C;
  for_lane_columns<kWidth>(C, lane, [&](int64_t c) {
    float xs[kWidth], scale[kWidth], shift[kWidth], ys[kWidth];
    load_floats(xs, x + c);
    load_floats(scale, weight + c);
    load_floats(shift, bias + c);
    for (int k = 0; k < kWidth; ++k) ys[k] = (xs[k] - row_mean) * row_rstd * scale[k] + shift[k];
    store_floats(y + c, ys);
  });
  if (lane == 0) {
    if (mean != nullptr) mean[row] = row_mean;
    if (rstd != nullptr) rstd[row] = row_rstd;
  }
}

// dinp += (dnorm − mean(dnorm) − norm · mean(dnorm · norm)) · rstd per row, dnorm = weight ⊙ dout
// (dinp = … with kOverwrite).
template <class T, bool kOverwrite, int kWidth>
__global__ void layernorm_input_gradient_kernel(T* __restrict__ dinp, const T* __restrict__ dout,
                                                const T* __restrict__ inp, const T* __restrict__ weight,
                                                const float* __restrict__ mean, const float* __restrict__ rstd,
                                                int64_t N, int64_t C) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x % kWarpSize);
  if (row >= N) return;
  const T* x = inp + row * C;
  const T* dy = dout + row * C;
  const float row_mean = mean[row];
  const float row_rstd = rstd[row];
  // norm and dnorm of the lane's columns [c, c + kWidth).
  const auto normalise = [&](int64_t c, float (&norm)[kWidth], float (&dnorm)[kWidth]) {
    float xs[kWidth], scale[kWidth], gradient[kWidth];
    load_floats(xs, x + c);
    load_floats(scale, weight + c);
    load_floats(gradient, dy + c);
    for (int k = 0; k < kWidth; ++k) {
      norm[k] = (xs[k] - row_mean) * row_rstd;
      dnorm[k] = scale[k] * gradient[k];
    }
  };
  float dnorm_sum = 0.0f;
  float dnorm_norm_sum = 0.0f;
  for_lane_columns<kWidth>(C, lane, [&](int64_t c) {
    float norm[kWidth], dnorm[kWidth];
    normalise(c, norm, dnorm);
    for (int k = 0; k < kWidth; ++k) {
      dnorm_sum += dnorm[k];
      dnorm_norm_sum += dnorm[k] * norm[k];
    }
  });
  const float dnorm_mean = warp_sum(dnorm_sum) / static_cast<float>(C);
  const float dnorm_norm_mean = warp_sum(dnorm_norm_sum) / static_cast<float>(C);
  T* dx = dinp + row * C;
  for_lane_columns<kWidth>(C, lane, [&](int64_t c) {
    float norm[kWidth], dnorm[kWidth], grad[kWidth];
    normalise(c, norm, dnorm);
    if constexpr (!kOverwrite) load_floats(grad, dx + c);
    for (int k = 0; k < kWidth; ++k) {
      const float g = (dnorm[k] - dnorm_mean - norm[k] * dnorm_norm_mean) * row_rstd;
      grad[k] = kOverwrite ? g : grad[k] + g;
    }
    store_floats(dx + c, grad);
  });
}

// dweight[c] += Σ_rows dout·norm, dbias[c] += Σ_rows dout. Block (32 channels × 32 row lanes); lane y
// sums rows y, y + 32, … in order, then row-lane 0 adds the 32 partials in order: a fixed summation
// order, so the result is the same bits on every run. Each row's 32 channels are one 128-byte load.
// (One block per 32 channels: C = 768 gives 24 blocks, enough to be correct and deterministic but
// not to fill an H200: the row-split form below is what the engine runs.)
template <class T, class G>
__global__ void __launch_bounds__(kParameterGradientThreads)
    layernorm_parameter_gradients_kernel(G* __restrict__ dweight, G* __restrict__ dbias, const T* __restrict__ dout,
                                         const T* __restrict__ inp, const float* __restrict__ mean,
                                         const float* __restrict__ rstd, int64_t N, int64_t C) {
  __shared__ float weight_partials[kRowLanes][kChannelsPerBlock + 1];  // +1: no shared-memory bank conflicts
  __shared__ float bias_partials[kRowLanes][kChannelsPerBlock + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kChannelsPerBlock + threadIdx.x;
  float weight_sum = 0.0f;
  float bias_sum = 0.0f;
  if (c < C) {
    for (int64_t row = threadIdx.y; row < N; row += kRowLanes) {
      const float dy = to_float(dout[row * C + c]);
      weight_sum += dy * ((to_float(inp[row * C + c]) - mean[row]) * rstd[row]);
      bias_sum += dy;
    }
  }
  weight_partials[threadIdx.y][threadIdx.x] = weight_sum;
  bias_partials[threadIdx.y][threadIdx.x] = bias_sum;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  weight_sum = 0.0f;
  bias_sum = 0.0f;
  for (int lane = 0; lane < kRowLanes; ++lane) {
    weight_sum += weight_partials[lane][threadIdx.x];
    bias_sum += bias_partials[lane][threadIdx.x];
  }
  if (dweight != nullptr) dweight[c] = from_float<G>(to_float(dweight[c]) + weight_sum);
  if (dbias != nullptr) dbias[c] = from_float<G>(to_float(dbias[c]) + bias_sum);
}

// The row-split form. Pass 1, grid (channel blocks, row chunks): block (x, y) sums rows
// y·kLayerNormRowsPerSplit … of its 32 channels as above (row lane l takes rows l, l + 32, … of the
// chunk, then the 32 lanes are added in order) into weight_partials[y·C + c] and
// bias_partials[y·C + c]. Pass 2: one thread per channel adds the chunks' partials in chunk order.
template <class T>
__global__ void __launch_bounds__(kParameterGradientThreads)
    layernorm_parameter_partials_kernel(float* __restrict__ weight_partials, float* __restrict__ bias_partials,
                                        const T* __restrict__ dout, const T* __restrict__ inp,
                                        const float* __restrict__ mean, const float* __restrict__ rstd, int64_t N,
                                        int64_t C) {
  __shared__ float weight_lanes[kRowLanes][kChannelsPerBlock + 1];
  __shared__ float bias_lanes[kRowLanes][kChannelsPerBlock + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kChannelsPerBlock + threadIdx.x;
  const int64_t first = static_cast<int64_t>(blockIdx.y) * kLayerNormRowsPerSplit;
  const int64_t last = first + kLayerNormRowsPerSplit < N ? first + kLayerNormRowsPerSplit : N;
  float weight_sum = 0.0f;
  float bias_sum = 0.0f;
  if (c < C) {
    for (int64_t row = first + threadIdx.y; row < last; row += kRowLanes) {
      const float dy = to_float(dout[row * C + c]);
      weight_sum += dy * ((to_float(inp[row * C + c]) - mean[row]) * rstd[row]);
      bias_sum += dy;
    }
  }
  weight_lanes[threadIdx.y][threadIdx.x] = weight_sum;
  bias_lanes[threadIdx.y][threadIdx.x] = bias_sum;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  weight_sum = 0.0f;
  bias_sum = 0.0f;
  for (int lane = 0; lane < kRowLanes; ++lane) {
    weight_sum += weight_lanes[lane][threadIdx.x];
    bias_sum += bias_lanes[lane][threadIdx.x];
  }
  weight_partials[static_cast<int64_t>(blockIdx.y) * C + c] = weight_sum;
  bias_partials[static_cast<int64_t>(blockIdx.y) * C + c] = bias_sum;
}

template <class G>
__global__ void layernorm_parameter_totals_kernel(G* __restrict__ dweight, G* __restrict__ dbias,
                                                  const float* __restrict__ weight_partials,
                                                  const float* __restrict__ bias_partials, int64_t splits,
                                                  int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float weight_sum = 0.0f;
  float bias_sum = 0.0f;
  for (int64_t split = 0; split < splits; ++split) {
    weight_sum += weight_partials[split * C + c];
    bias_sum += bias_partials[split * C + c];
  }
  if (dweight != nullptr) dweight[c] = from_float<G>(to_float(dweight[c]) + weight_sum);
  if (dbias != nullptr) dbias[c] = from_float<G>(to_float(dbias[c]) + bias_sum);
}

int64_t row_splits(int64_t N) { return (N + kLayerNormRowsPerSplit - 1) / kLayerNormRowsPerSplit; }

template <class T>
void launch_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias, int64_t N,
                    int64_t C, float eps, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  const auto blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
  const bool vectorized = C % kVectorElements == 0 && vector_aligned(out, inp, weight, bias);
  const auto kernel = vectorized ? layernorm_forward_kernel<T, kVectorElements> : layernorm_forward_kernel<T, 1>;
  kernel<<<blocks, launch::kThreadsPerBlock, 0, stream>>>(out, mean, rstd, inp, weight, bias, N, C, eps);
  MERIDIAN_CUDA_CHECK_LAUNCH("layernorm_forward");
}

template <class T, class G>
void launch_backward(T* dinp, G* dweight, G* dbias, const T* dout, const T* inp, const T* weight, const float* mean,
                     const float* rstd, int64_t N, int64_t C, cudaStream_t stream, bool overwrite_dinp,
                     void* scratch) {
  if (N == 0 || C == 0) return;
  if (dinp != nullptr) {
    const auto blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
    const bool vectorized = C % kVectorElements == 0 && vector_aligned(dinp, dout, inp, weight);
    const auto kernel = vectorized ? (overwrite_dinp ? layernorm_input_gradient_kernel<T, true, kVectorElements>
                                                     : layernorm_input_gradient_kernel<T, false, kVectorElements>)
                                   : (overwrite_dinp ? layernorm_input_gradient_kernel<T, true, 1>
                                                     : layernorm_input_gradient_kernel<T, false, 1>);
    kernel<<<blocks, launch::kThreadsPerBlock, 0, stream>>>(dinp, dout, inp, weight, mean, rstd, N, C);
    MERIDIAN_CUDA_CHECK_LAUNCH("layernorm_backward (input gradient)");
  }
  if ((dweight != nullptr || dbias != nullptr) && scratch != nullptr) {
    const int64_t splits = row_splits(N);
    auto* weight_partials = static_cast<float*>(scratch);
    float* bias_partials = weight_partials + splits * C;
    const dim3 grid(static_cast<unsigned>((C + kChannelsPerBlock - 1) / kChannelsPerBlock),
                    static_cast<unsigned>(splits));
    layernorm_parameter_partials_kernel<T><<<grid, dim3(kChannelsPerBlock, kRowLanes), 0, stream>>>(
        weight_partials, bias_partials, dout, inp, mean, rstd, N, C);
    MERIDIAN_CUDA_CHECK_LAUNCH("layernorm_backward (parameter partials)");
    layernorm_parameter_totals_kernel<G>
        <<<static_cast<unsigned>((C + launch::kThreadsPerBlock - 1) / launch::kThreadsPerBlock),
           launch::kThreadsPerBlock, 0, stream>>>(dweight, dbias, weight_partials, bias_partials, splits, C);
    MERIDIAN_CUDA_CHECK_LAUNCH("layernorm_backward (parameter totals)");
    return;
  }
  if (dweight != nullptr || dbias != nullptr) {
    const auto blocks = static_cast<unsigned>((C + kChannelsPerBlock - 1) / kChannelsPerBlock);
    layernorm_parameter_gradients_kernel<T, G>
        <<<blocks, dim3(kChannelsPerBlock, kRowLanes), 0, stream>>>(dweight, dbias, dout, inp, mean, rstd, N, C);
    MERIDIAN_CUDA_CHECK_LAUNCH("layernorm_backward (parameter gradients)");
  }
}

}  // namespace

size_t layernorm_backward_scratch_bytes(int64_t N, int64_t C) {
  return static_cast<size_t>(2 * row_splits(N) * C) * sizeof(float);
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps, cudaStream_t stream) {
  launch_forward(out, mean, rstd, inp, weight, bias, N, C, eps, stream);
}

void layernorm_forward(__nv_bfloat16* out, float* mean, float* rstd, const __nv_bfloat16* inp,
                       const __nv_bfloat16* weight, const __nv_bfloat16* bias, int64_t N, int64_t C, float eps,
                       cudaStream_t stream) {
  launch_forward(out, mean, rstd, inp, weight, bias, N, C, eps, stream);
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        cudaStream_t stream, bool overwrite_dinp, void* scratch) {
  launch_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, stream, overwrite_dinp, scratch);
}

void layernorm_backward(__nv_bfloat16* dinp, __nv_bfloat16* dweight, __nv_bfloat16* dbias, const __nv_bfloat16* dout,
                        const __nv_bfloat16* inp, const __nv_bfloat16* weight, const float* mean, const float* rstd,
                        int64_t N, int64_t C, cudaStream_t stream, bool overwrite_dinp, void* scratch) {
  launch_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, stream, overwrite_dinp, scratch);
}

void layernorm_backward(__nv_bfloat16* dinp, float* dweight, float* dbias, const __nv_bfloat16* dout,
                        const __nv_bfloat16* inp, const __nv_bfloat16* weight, const float* mean, const float* rstd,
                        int64_t N, int64_t C, cudaStream_t stream, bool overwrite_dinp, void* scratch) {
  launch_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, stream, overwrite_dinp, scratch);
}

}  // namespace meridian::ops::cuda

#include "ops/cuda/vocab_slice_cross_entropy.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "ops/cuda/kernel_common.cuh"

namespace meridian::ops::cuda {

namespace {

using detail::check_launch;
using detail::from_float;
using detail::kWarpSize;
using detail::to_float;
using detail::warp_max;
using detail::warp_sum;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarpSize;

// The block's reduction of one value per thread (warps first, then warp 0 over the warps, in a
// fixed order); every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float value) {
  __shared__ float per_warp[kWarps];
  __shared__ float result;
  value = kMax ? warp_max(value) : warp_sum(value);
  if (threadIdx.x % kWarpSize == 0) per_warp[threadIdx.x / kWarpSize] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = per_warp[0];
    for (int w = 1; w < kWarps; ++w) total = kMax ? fmaxf(total, per_warp[w]) : total + per_warp[w];
    result = total;
  }
  __syncthreads();
  return result;
}

template <class Element>
__global__ void __launch_bounds__(kThreads)
    row_max_kernel(float* row_max, const Element* logits, int64_t Vs, int64_t Vs_p) {
  const Element* row = logits + static_cast<int64_t>(blockIdx.x) * Vs_p;
  float value = -INFINITY;
  for (int64_t j = threadIdx.x; j < Vs; j += kThreads) value = fmaxf(value, to_float(row[j]));
  value = block_reduce<true>(value);
  if (threadIdx.x == 0) row_max[blockIdx.x] = value;
}

template <class Element>
__global__ void __launch_bounds__(kThreads)
    sum_exp_kernel(float* sum_exp, const Element* logits, const float* row_max, int64_t Vs, int64_t Vs_p) {
  const Element* row = logits + static_cast<int64_t>(blockIdx.x) * Vs_p;
  const float max = row_max[blockIdx.x];
  float value = 0.0f;
  for (int64_t j = threadIdx.x; j < Vs; j += kThreads) value += expf(to_float(row[j]) - max);
  value = block_reduce<false>(value);
  if (threadIdx.x == 0) sum_exp[blockIdx.x] = value;
}

// One thread per row.
template <class Element>
__global__ void target_logit_kernel(float* target_logit, const Element* logits, const int32_t* targets,
                                    int64_t first, int64_t N, int64_t Vs, int64_t Vs_p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N) return;
  const int64_t column = static_cast<int64_t>(targets[i]) - first;
  const bool here = targets[i] >= 0 && column >= 0 && column < Vs;
  target_logit[i] = here ? to_float(logits[i * Vs_p + column]) : 0.0f;
}

template <class Element>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(Element* dlogits, const float* dlosses, const Element* logits, const float* lse,
                    const int32_t* targets, int64_t first, int64_t Vs, int64_t Vs_p) {
  const int32_t target = targets[blockIdx.x];
  if (target < 0) return;  // ignored row
  const int64_t offset = static_cast<int64_t>(blockIdx.x) * Vs_p;
  const float row_lse = lse[blockIdx.x], dloss = dlosses[blockIdx.x];
  for (int64_t j = threadIdx.x; j < Vs; j += kThreads) {
    const float probability = expf(to_float(logits[offset + j]) - row_lse);
    const float grad = dloss * (first + j == target ? probability - 1.0f : probability);
    dlogits[offset + j] = from_float<Element>(to_float(dlogits[offset + j]) + grad);
  }
}

std::string check_shape(const char* caller, int64_t N, int64_t Vs, int64_t Vs_p) {
  const std::string text = std::string(caller) + " (N=" + std::to_string(N) + " Vs=" + std::to_string(Vs) +
                           " Vs_p=" + std::to_string(Vs_p) + ")";
  if (N < 0 || Vs < 0 || Vs > Vs_p) throw std::invalid_argument(text + ": need N >= 0 and 0 <= Vs <= Vs_p");
  if (N > 0x7fffffff) throw std::invalid_argument(text + ": more rows than a grid holds");
  return text;
}

}  // namespace

template <class Element>
void vocab_slice_row_max(float* row_max, const Element* logits, int64_t N, int64_t Vs, int64_t Vs_p,
                         cudaStream_t stream) {
  const std::string what = check_shape("vocab_slice_row_max", N, Vs, Vs_p);
  if (N == 0) return;
  row_max_kernel<Element><<<static_cast<unsigned>(N), kThreads, 0, stream>>>(row_max, logits, Vs, Vs_p);
  check_launch(what);
}

template <class Element>
void vocab_slice_sum_exp(float* sum_exp, const Element* logits, const float* row_max, int64_t N, int64_t Vs,
                         int64_t Vs_p, cudaStream_t stream) {
  const std::string what = check_shape("vocab_slice_sum_exp", N, Vs, Vs_p);
  if (N == 0) return;
  sum_exp_kernel<Element><<<static_cast<unsigned>(N), kThreads, 0, stream>>>(sum_exp, logits, row_max, Vs, Vs_p);
  check_launch(what);
}

template <class Element>
void vocab_slice_target_logit(float* target_logit, const Element* logits, const int32_t* targets, int64_t first,
                              int64_t N, int64_t Vs, int64_t Vs_p, cudaStream_t stream) {
  const std::string what = check_shape("vocab_slice_target_logit", N, Vs, Vs_p);
  if (N == 0) return;
  const auto blocks = static_cast<unsigned>((N + kThreads - 1) / kThreads);
  target_logit_kernel<Element><<<blocks, kThreads, 0, stream>>>(target_logit, logits, targets, first, N, Vs, Vs_p);
  check_launch(what);
}

template <class Element>
void vocab_slice_cross_entropy_backward(Element* dlogits, const float* dlosses, const Element* logits,
                                        const float* lse, const int32_t* targets, int64_t first, int64_t N,
                                        int64_t Vs, int64_t Vs_p, cudaStream_t stream) {
  const std::string what = check_shape("vocab_slice_cross_entropy_backward", N, Vs, Vs_p);
  if (N == 0 || Vs == 0) return;
  backward_kernel<Element><<<static_cast<unsigned>(N), kThreads, 0, stream>>>(dlogits, dlosses, logits, lse, targets,
                                                                              first, Vs, Vs_p);
  check_launch(what);
}

#define MERIDIAN_INSTANTIATE_VOCAB_SLICE(Element)                                                                   \
  template void vocab_slice_row_max<Element>(float*, const Element*, int64_t, int64_t, int64_t, cudaStream_t);    \
  template void vocab_slice_sum_exp<Element>(float*, const Element*, const float*, int64_t, int64_t, int64_t,     \
                                             cudaStream_t);                                                       \
  template void vocab_slice_target_logit<Element>(float*, const Element*, const int32_t*, int64_t, int64_t,       \
                                                  int64_t, int64_t, cudaStream_t);                                \
  template void vocab_slice_cross_entropy_backward<Element>(Element*, const float*, const Element*, const float*, \
                                                            const int32_t*, int64_t, int64_t, int64_t, int64_t,   \
                                                            cudaStream_t);

MERIDIAN_INSTANTIATE_VOCAB_SLICE(float)
MERIDIAN_INSTANTIATE_VOCAB_SLICE(__nv_bfloat16)

#undef MERIDIAN_INSTANTIATE_VOCAB_SLICE

}  // namespace meridian::ops::cuda

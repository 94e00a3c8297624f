#include "ops/cuda/cross_entropy.h"

#include <stdexcept>
#include <string>

#include "ops/cuda/kernel_common.cuh"

namespace meridian::ops::cuda {

namespace {

using detail::check_launch;
using detail::from_float;
using detail::kFullWarp;
using detail::kVectorElements;
using detail::kWarpSize;
using detail::load_floats;
using detail::store_floats;
using detail::to_float;
using detail::vector_aligned;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarpSize;

// A running softmax denominator: sum = Σ exp(x − max) over the values seen so far.
struct RunningSum {
  float max;
  float sum;
};

__device__ __forceinline__ RunningSum combine(RunningSum a, RunningSum b) {
  const float max = fmaxf(a.max, b.max);
  if (max == -INFINITY) return {max, 0.0f};  // both empty
  return {max, a.sum * expf(a.max - max) + b.sum * expf(b.max - max)};
}

// log Σ_{j<V} exp(row[j]) for the block's row, in one read: each thread folds its columns (kWidth
// consecutive ones at a time: 8 for 16-byte vectors, which the padded row's Vp keeps in bounds) into
// a running (max, sum), then warps and the block combine them in a fixed order (deterministic).
template <int kWidth = 1, class Element>
__device__ float row_log_sum_exp(const Element* row, int64_t V) {
  RunningSum running{-INFINITY, 0.0f};
  for (int64_t first = int64_t{threadIdx.x} * kWidth; first < V; first += int64_t{kThreads} * kWidth) {
    float values[kWidth];
    load_floats(values, row + first);
    for (int k = 0; k < kWidth && first + k < V; ++k) {
      const float x = values[k];
      if (x == -INFINITY) continue;  // adds exp(−∞) = 0; folding it would compute exp(−∞ − (−∞)) = NaN
      if (x > running.max) {
        running.sum = running.sum * expf(running.max - x) + 1.0f;  // exp(−∞) = 0 the first time
        running.max = x;
      } else {
        running.sum += expf(x - running.max);
      }
    }
  }
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const RunningSum other{__shfl_xor_sync(kFullWarp, running.max, offset),
                           __shfl_xor_sync(kFullWarp, running.sum, offset)};
    running = combine(running, other);
  }
  __shared__ RunningSum per_warp[kWarps];
  __shared__ float result;
  const int warp = threadIdx.x / kWarpSize;
  if (threadIdx.x % kWarpSize == 0) per_warp[warp] = running;
  __syncthreads();
  if (threadIdx.x == 0) {
    RunningSum total = per_warp[0];
    for (int w = 1; w < kWarps; ++w) total = combine(total, per_warp[w]);
    result = total.max + logf(total.sum);
  }
  __syncthreads();
  return result;
}

__device__ __forceinline__ float row_loss(float row_lse, float target_logit, int32_t target, int64_t V) {
  if (target < 0) return 0.0f;
  return target < V ? row_lse - target_logit : __int_as_float(0x7fc00000);  // NaN: target out of range
}

template <class Element>
__device__ void write_loss(float* losses, float* lse, const Element* row, float row_lse, int32_t target, int64_t V) {
  if (threadIdx.x != 0) return;
  lse[blockIdx.x] = row_lse;
  const float target_logit = target >= 0 && target < V ? to_float(row[target]) : 0.0f;
  losses[blockIdx.x] = row_loss(row_lse, target_logit, target, V);
}

// drow[j] += dloss · (exp(row[j] − lse) − [j == target]) for j < V.
template <class Element>
__device__ void add_row_gradient(Element* drow, const Element* row, float row_lse, float dloss, int32_t target,
                                 int64_t V) {
  for (int64_t j = threadIdx.x; j < V; j += kThreads) {
    const float prob = expf(to_float(row[j]) - row_lse);
    const float grad = dloss * (j == target ? prob - 1.0f : prob);
    drow[j] = from_float<Element>(to_float(drow[j]) + grad);
  }
}

// One block per row (grid.x = N).
template <class Element>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_forward_kernel(float* losses, float* lse, const Element* logits, const int32_t* targets, int64_t V,
                                 int64_t Vp) {
  const Element* row = logits + static_cast<int64_t>(blockIdx.x) * Vp;
  const float row_lse = row_log_sum_exp(row, V);
  write_loss(losses, lse, row, row_lse, targets[blockIdx.x], V);
}

template <class Element>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_backward_kernel(Element* dlogits, const float* dlosses, const Element* logits, const float* lse,
                                  const int32_t* targets, int64_t V, int64_t Vp) {
  const int32_t target = targets[blockIdx.x];
  if (target < 0) return;  // ignored row
  const int64_t offset = static_cast<int64_t>(blockIdx.x) * Vp;
  add_row_gradient(dlogits + offset, logits + offset, lse[blockIdx.x], dlosses[blockIdx.x], target, V);
}

// drow[j] = dloss · (exp(row[j] − lse) − [j == target]) for j < V and 0 for V ≤ j < Vp; a whole
// row of zeros for an ignored row (target < 0). kWidth columns at a time (8: 16-byte vectors).
template <int kWidth, class Element>
__device__ void write_row_gradient(Element* drow, const Element* row, float row_lse, float dloss, int32_t target,
                                   int64_t V, int64_t Vp) {
  for (int64_t first = int64_t{threadIdx.x} * kWidth; first < Vp; first += int64_t{kThreads} * kWidth) {
    float values[kWidth] = {};
    const bool real_columns = target >= 0 && first < V;
    if (real_columns) load_floats(values, row + first);
    float grads[kWidth];
    for (int k = 0; k < kWidth; ++k) {
      const int64_t j = first + k;
      grads[k] = 0.0f;
      if (real_columns && j < V) {
        const float prob = expf(values[k] - row_lse);
        grads[k] = dloss * (j == target ? prob - 1.0f : prob);
      }
    }
    store_floats(drow + first, grads);
  }
}

// kWidth = 8 (16-byte vectors) needs Vp a multiple of 8 and aligned logits and dlogits.
template <class Element, bool kOverwrite, int kWidth>
__global__ void __launch_bounds__(kThreads)
    fused_classifier_kernel(float* losses, float* lse, Element* dlogits, const float* dlosses, const Element* logits,
                            const int32_t* targets, int64_t V, int64_t Vp) {
  const int64_t offset = static_cast<int64_t>(blockIdx.x) * Vp;
  const Element* row = logits + offset;
  const int32_t target = targets[blockIdx.x];
  const float row_lse = row_log_sum_exp<kWidth>(row, V);
  write_loss(losses, lse, row, row_lse, target, V);
  // The second read of the row usually hits L2 (a GPT-2 row is 100–200 KB).
  if (kOverwrite) {
    write_row_gradient<kWidth>(dlogits + offset, row, row_lse, dlosses[blockIdx.x], target, V, Vp);
    return;
  }
  if (target < 0) return;
  add_row_gradient(dlogits + offset, row, row_lse, dlosses[blockIdx.x], target, V);
}

std::string check_shape(const char* caller, int64_t N, int64_t V, int64_t Vp) {
  const std::string text = std::string(caller) + " (N=" + std::to_string(N) + " V=" + std::to_string(V) +
                           " Vp=" + std::to_string(Vp) + ")";
  if (N < 0 || V <= 0 || V > Vp) throw std::invalid_argument(text + ": need N >= 0 and 0 < V <= Vp");
  if (N > 0x7fffffff) throw std::invalid_argument(text + ": more rows than a grid holds");
  return text;
}

}  // namespace

template <class Element>
void cross_entropy_forward(float* losses, float* lse, const Element* logits, const int32_t* targets, int64_t N,
                           int64_t V, int64_t Vp, cudaStream_t stream) {
  const std::string what = check_shape("cross_entropy_forward", N, V, Vp);
  if (N == 0) return;
  cross_entropy_forward_kernel<Element><<<static_cast<unsigned>(N), kThreads, 0, stream>>>(losses, lse, logits, targets,
                                                                                          V, Vp);
  check_launch(what);
}

template <class Element>
void cross_entropy_backward(Element* dlogits, const float* dlosses, const Element* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V, int64_t Vp, cudaStream_t stream) {
  const std::string what = check_shape("cross_entropy_backward", N, V, Vp);
  if (N == 0) return;
  cross_entropy_backward_kernel<Element><<<static_cast<unsigned>(N), kThreads, 0, stream>>>(dlogits, dlosses, logits,
                                                                                           lse, targets, V, Vp);
  check_launch(what);
}

template <class Element>
void fused_classifier(float* losses, float* lse, Element* dlogits, const float* dlosses, const Element* logits,
                      const int32_t* targets, int64_t N, int64_t V, int64_t Vp, cudaStream_t stream,
                      bool overwrite) {
  const std::string what = check_shape("fused_classifier", N, V, Vp);
  if (N == 0) return;
  const bool vectorized = Vp % kVectorElements == 0 && vector_aligned(logits, dlogits);
  const auto kernel = vectorized ? (overwrite ? fused_classifier_kernel<Element, true, kVectorElements>
                                              : fused_classifier_kernel<Element, false, kVectorElements>)
                                 : (overwrite ? fused_classifier_kernel<Element, true, 1>
                                              : fused_classifier_kernel<Element, false, 1>);
  kernel<<<static_cast<unsigned>(N), kThreads, 0, stream>>>(losses, lse, dlogits, dlosses, logits, targets, V, Vp);
  check_launch(what);
}

#define MERIDIAN_INSTANTIATE_CROSS_ENTROPY(Element)                                                              \
  template void cross_entropy_forward<Element>(float*, float*, const Element*, const int32_t*, int64_t, int64_t, \
                                               int64_t, cudaStream_t);                                           \
  template void cross_entropy_backward<Element>(Element*, const float*, const Element*, const float*,            \
                                                const int32_t*, int64_t, int64_t, int64_t, cudaStream_t);        \
  template void fused_classifier<Element>(float*, float*, Element*, const float*, const Element*, const int32_t*, \
                                          int64_t, int64_t, int64_t, cudaStream_t, bool);

MERIDIAN_INSTANTIATE_CROSS_ENTROPY(float)
MERIDIAN_INSTANTIATE_CROSS_ENTROPY(__nv_bfloat16)

#undef MERIDIAN_INSTANTIATE_CROSS_ENTROPY

}  // namespace meridian::ops::cuda

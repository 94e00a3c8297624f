#include "ops/cuda/optimizer.h"

#include <cuda_runtime.h>

#include <cmath>
#include <mutex>
#include <vector>

#include "ops/cuda/launch.cuh"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

// One grid-stride pass, 256 threads a block. The _rn intrinsics are IEEE operations the compiler may
// not fuse into FMAs, so each step rounds exactly where the CPU's does; sqrtf and '/' are IEEE too
// (nvcc's default -prec-sqrt/-prec-div).
__global__ void adamw_kernel(float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, AdamWScalars s) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = __fmul_rn(grad[i], s.grad_scale);
    const float decayed = __fmul_rn(param[i], s.decay);
    const float m_new = __fadd_rn(__fmul_rn(s.beta1, m[i]), __fmul_rn(s.one_minus_beta1, g));
    const float v_new = __fadd_rn(__fmul_rn(s.beta2, v[i]), __fmul_rn(s.one_minus_beta2, __fmul_rn(g, g)));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v_new), s.bias_correction2_sqrt), s.eps);
    param[i] = __fsub_rn(decayed, __fmul_rn(s.step_size, __fdiv_rn(m_new, denom)));
    m[i] = m_new;
    v[i] = v_new;
  }
}

// Sum of squares: both passes use blocks of kSumOfSquaresPartials threads, so pass 2 is one block
// with one thread per partial.
constexpr int kNormThreads = kSumOfSquaresPartials;
static_assert((kNormThreads & (kNormThreads - 1)) == 0, "the tree reduction halves a power of two");

// Σ of one value per thread of the block, in a fixed tree (the same order on every run).
__device__ double block_sum(double value) {
  __shared__ double shared[kNormThreads];
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = kNormThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  return shared[0];
}

// Pass 1: block b's thread t sums x[b·256 + t + k·(256·kSumOfSquaresPartials)] for k = 0, 1, … (a
// pattern fixed by n alone, independent of the GPU's SM count), then the block reduces.
__global__ void sum_of_squares_partials_kernel(double* __restrict__ partials, const float* __restrict__ x, int64_t n) {
  double sum = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kNormThreads + threadIdx.x; i < n;
       i += static_cast<int64_t>(kNormThreads) * kSumOfSquaresPartials) {
    const auto value = static_cast<double>(x[i]);
    sum += value * value;
  }
  const double block_total = block_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = block_total;
}

// Pass 2: one block, one partial per thread.
__global__ void sum_of_squares_total_kernel(double* __restrict__ result, const double* __restrict__ partials,
                                            bool accumulate) {
  const double total = block_sum(partials[threadIdx.x]);
  if (threadIdx.x == 0) *result = accumulate ? *result + total : total;
}

}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& hyper,
                  cudaStream_t stream) {
  if (n == 0) return;
  adamw_kernel<<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(param, grad, m, v, n,
                                                                                       adamw_scalars(hyper));
  MERIDIAN_CUDA_CHECK_LAUNCH("adamw_update");
}

void sum_of_squares(double* result, double* partials, const float* x, int64_t n, bool accumulate, cudaStream_t stream) {
  sum_of_squares_partials_kernel<<<kSumOfSquaresPartials, kNormThreads, 0, stream>>>(partials, x, n);
  MERIDIAN_CUDA_CHECK_LAUNCH("sum_of_squares (partials)");
  sum_of_squares_total_kernel<<<1, kNormThreads, 0, stream>>>(result, partials, accumulate);
  MERIDIAN_CUDA_CHECK_LAUNCH("sum_of_squares (total)");
}

double sum_of_squares(const float* x, int64_t n, cudaStream_t stream) {
  // One scratch buffer per device: the result, then the partials. The lock is held until the stream
  // has finished with it, so concurrent callers never share it mid-flight.
  static std::mutex mutex;
  static std::vector<double*> scratch_by_device;
  std::lock_guard<std::mutex> lock(mutex);
  const int device = current_device();
  if (scratch_by_device.size() <= static_cast<size_t>(device))
    scratch_by_device.resize(static_cast<size_t>(device) + 1, nullptr);
  double*& scratch = scratch_by_device[static_cast<size_t>(device)];
  if (scratch == nullptr) MERIDIAN_CUDA_CHECK(cudaMalloc(&scratch, (1 + kSumOfSquaresPartials) * sizeof(double)));
  sum_of_squares(scratch, scratch + 1, x, n, /*accumulate=*/false, stream);
  double result = 0.0;
  copy_to_host(&result, scratch, sizeof(double), stream);
  synchronize(stream);
  return result;
}

}  // namespace meridian::ops::cuda

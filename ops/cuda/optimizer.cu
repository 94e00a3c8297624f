#include "ops/cuda/optimizer.h"

#include <cuda_runtime.h>

#include <cmath>
#include <mutex>
#include <vector>

#include "ops/cuda/launch.cuh"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

// The _rn intrinsics are IEEE operations the compiler may not fuse into FMAs, so each step rounds
// exactly where the CPU's does; sqrtf and '/' are IEEE too (nvcc's default -prec-sqrt/-prec-div).
__device__ __forceinline__ void adamw_element(float* __restrict__ param, const float* __restrict__ grad,
                                              float* __restrict__ m, float* __restrict__ v, int64_t i,
                                              const AdamWScalars& s) {
  const float g = __fmul_rn(grad[i], s.grad_scale);
  const float decayed = __fmul_rn(param[i], s.decay);
  const float m_new = __fadd_rn(__fmul_rn(s.beta1, m[i]), __fmul_rn(s.one_minus_beta1, g));
  const float v_new = __fadd_rn(__fmul_rn(s.beta2, v[i]), __fmul_rn(s.one_minus_beta2, __fmul_rn(g, g)));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v_new), s.bias_correction2_sqrt), s.eps);
  param[i] = __fsub_rn(decayed, __fmul_rn(s.step_size, __fdiv_rn(m_new, denom)));
  m[i] = m_new;
  v[i] = v_new;
}

// One grid-stride pass, 256 threads a block.
__global__ void adamw_kernel(float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, AdamWScalars s) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    adamw_element(param, grad, m, v, i, s);
  }
}

// Multi-tensor launches: up to kMultiTensorBatch tensors whose pointers travel in the kernel's
// arguments (about 2 KiB, under the classic 4 KiB limit); block b works on chunk
// b − first_block[t] of the tensor t with first_block[t] ≤ b < first_block[t + 1].
constexpr int64_t kChunk = 16384;  // elements a block: 64 per thread

int64_t chunks_of(int64_t n) { return (n + kChunk - 1) / kChunk; }

__device__ __forceinline__ int tensor_of_block(const int* first_block, int count) {
  int t = 0;
  while (t + 1 < count && first_block[t + 1] <= static_cast<int>(blockIdx.x)) ++t;
  return t;
}

struct AdamWBatch {
  float* param[kMultiTensorBatch];
  const float* grad[kMultiTensorBatch];
  float* m[kMultiTensorBatch];
  float* v[kMultiTensorBatch];
  int64_t n[kMultiTensorBatch];
  int first_block[kMultiTensorBatch + 1];
  bool decay[kMultiTensorBatch];
  int count;
};

__global__ void adamw_many_kernel(const __grid_constant__ AdamWBatch batch, AdamWScalars decayed,
                                  AdamWScalars plain) {
  const int t = tensor_of_block(batch.first_block, batch.count);
  const int64_t begin = static_cast<int64_t>(static_cast<int>(blockIdx.x) - batch.first_block[t]) * kChunk;
  const int64_t end = begin + kChunk < batch.n[t] ? begin + kChunk : batch.n[t];
  const AdamWScalars& s = batch.decay[t] ? decayed : plain;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    adamw_element(batch.param[t], batch.grad[t], batch.m[t], batch.v[t], i, s);
  }
}

struct SumOfSquaresBatch {
  const float* x[kMultiTensorBatch];
  int64_t n[kMultiTensorBatch];
  int first_block[kMultiTensorBatch + 1];
  int count;
};

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

// Many tensors, pass 1: block b writes Σ x² of its chunk to partials[b] (threads stride the chunk in
// a fixed pattern, then the fixed tree).
__global__ void sum_of_squares_many_kernel(double* __restrict__ partials, const __grid_constant__ SumOfSquaresBatch batch) {
  const int t = tensor_of_block(batch.first_block, batch.count);
  const int64_t begin = static_cast<int64_t>(static_cast<int>(blockIdx.x) - batch.first_block[t]) * kChunk;
  const int64_t end = begin + kChunk < batch.n[t] ? begin + kChunk : batch.n[t];
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const auto value = static_cast<double>(batch.x[t][i]);
    sum += value * value;
  }
  const double block_total = block_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = block_total;
}

// Many tensors, pass 2: one block; thread t sums partials t, t + 256, … in order, then the tree.
__global__ void sum_of_partials_kernel(double* __restrict__ result, const double* __restrict__ partials,
                                       int64_t count) {
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kNormThreads) sum += partials[i];
  const double total = block_sum(sum);
  if (threadIdx.x == 0) *result = total;
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

void adamw_update_many(const AdamWTensor* tensors, int count, const AdamWHyper& decayed, const AdamWHyper& plain,
                       cudaStream_t stream) {
  const AdamWScalars decayed_scalars = adamw_scalars(decayed), plain_scalars = adamw_scalars(plain);
  AdamWBatch batch{};
  const auto flush = [&] {
    if (batch.count == 0) return;
    adamw_many_kernel<<<static_cast<unsigned>(batch.first_block[batch.count]), launch::kThreadsPerBlock, 0, stream>>>(
        batch, decayed_scalars, plain_scalars);
    MERIDIAN_CUDA_CHECK_LAUNCH("adamw_update_many");
    batch = AdamWBatch{};
  };
  for (int i = 0; i < count; ++i) {
    const AdamWTensor& tensor = tensors[i];
    if (tensor.n == 0) continue;
    if (batch.count == kMultiTensorBatch) flush();
    const int slot = batch.count++;
    batch.param[slot] = tensor.param;
    batch.grad[slot] = tensor.grad;
    batch.m[slot] = tensor.m;
    batch.v[slot] = tensor.v;
    batch.n[slot] = tensor.n;
    batch.decay[slot] = tensor.decay;
    batch.first_block[slot + 1] = batch.first_block[slot] + static_cast<int>(chunks_of(tensor.n));
  }
  flush();
}

int64_t sum_of_squares_many_partials(const int64_t* sizes, int count) {
  int64_t partials = 0;
  for (int i = 0; i < count; ++i) partials += chunks_of(sizes[i]);
  return partials;
}

void sum_of_squares_many(double* result, double* partials, const float* const* tensors, const int64_t* sizes,
                         int count, cudaStream_t stream) {
  SumOfSquaresBatch batch{};
  int64_t written = 0;  // partials of the batches already launched
  const auto flush = [&] {
    if (batch.count == 0) return;
    const int blocks = batch.first_block[batch.count];
    sum_of_squares_many_kernel<<<static_cast<unsigned>(blocks), kNormThreads, 0, stream>>>(partials + written, batch);
    MERIDIAN_CUDA_CHECK_LAUNCH("sum_of_squares_many (partials)");
    written += blocks;
    batch = SumOfSquaresBatch{};
  };
  for (int i = 0; i < count; ++i) {
    if (sizes[i] == 0) continue;
    if (batch.count == kMultiTensorBatch) flush();
    const int slot = batch.count++;
    batch.x[slot] = tensors[i];
    batch.n[slot] = sizes[i];
    batch.first_block[slot + 1] = batch.first_block[slot] + static_cast<int>(chunks_of(sizes[i]));
  }
  flush();
  sum_of_partials_kernel<<<1, kNormThreads, 0, stream>>>(result, partials, written);
  MERIDIAN_CUDA_CHECK_LAUNCH("sum_of_squares_many (total)");
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
  // Kept for the process's life (never destroyed, so still reachable at exit: no leak report).
  static std::mutex mutex;
  static auto* const scratch_by_device = new std::vector<double*>;
  std::lock_guard<std::mutex> lock(mutex);
  const int device = current_device();
  if (scratch_by_device->size() <= static_cast<size_t>(device))
    scratch_by_device->resize(static_cast<size_t>(device) + 1, nullptr);
  double*& scratch = (*scratch_by_device)[static_cast<size_t>(device)];
  if (scratch == nullptr) MERIDIAN_CUDA_CHECK(cudaMalloc(&scratch, (1 + kSumOfSquaresPartials) * sizeof(double)));
  sum_of_squares(scratch, scratch + 1, x, n, /*accumulate=*/false, stream);
  double result = 0.0;
  copy_to_host(&result, scratch, sizeof(double), stream);
  synchronize(stream);
  return result;
}

}  // namespace meridian::ops::cuda

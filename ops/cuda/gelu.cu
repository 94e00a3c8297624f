#include "ops/cuda/gelu.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/kernel_common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubicCoefficient = 0.044715f;

__device__ __forceinline__ float tanh_argument(float x) { return kSqrt2OverPi * (x + kCubicCoefficient * x * x * x); }

// 0.5·(1 + tanh(u)) = sigmoid(2u), the CPU kernel's form: no cancellation for large |x|. expf (not
// the faster __expf) keeps it within a few ulp of the CPU's polynomial exp.
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Grid-stride loops, 256 threads a block (launch.cuh); one element per thread for all but huge n.
template <class T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n) {  // in place allowed: no __restrict__
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = to_float(inp[i]);
    out[i] = from_float<T>(x * sigmoid(2.0f * tanh_argument(x)));
  }
}

template <class T>
__global__ void gelu_backward_kernel(T* __restrict__ dinp, const T* __restrict__ inp, const T* __restrict__ dout,
                                     int64_t n, bool overwrite) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = to_float(inp[i]);
    // With s = sigmoid(2u): d/dx [x·s] = s + x · 2s(1 − s) · du/dx.
    const float s = sigmoid(2.0f * tanh_argument(x));
    const float du_dx = kSqrt2OverPi * (1.0f + 3.0f * kCubicCoefficient * x * x);
    const float grad = to_float(dout[i]) * (s + 2.0f * x * s * (1.0f - s) * du_dx);
    dinp[i] = from_float<T>(overwrite ? grad : to_float(dinp[i]) + grad);
  }
}

template <class T>
void launch_forward(T* out, const T* inp, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_forward_kernel<T><<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(out, inp, n);
  MERIDIAN_CUDA_CHECK_LAUNCH("gelu_forward");
}

template <class T>
void launch_backward(T* dinp, const T* inp, const T* dout, int64_t n, cudaStream_t stream, bool overwrite) {
  if (n == 0) return;
  gelu_backward_kernel<T><<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(dinp, inp, dout, n,
                                                                                              overwrite);
  MERIDIAN_CUDA_CHECK_LAUNCH("gelu_backward");
}

}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n, cudaStream_t stream) { launch_forward(out, inp, n, stream); }
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, cudaStream_t stream,
                   bool overwrite) {
  launch_backward(dinp, inp, dout, n, stream, overwrite);
}
void gelu_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, int64_t n, cudaStream_t stream) {
  launch_forward(out, inp, n, stream);
}
void gelu_backward(__nv_bfloat16* dinp, const __nv_bfloat16* inp, const __nv_bfloat16* dout, int64_t n,
                   cudaStream_t stream, bool overwrite) {
  launch_backward(dinp, inp, dout, n, stream, overwrite);
}

}  // namespace meridian::ops::cuda

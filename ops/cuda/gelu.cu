#include "ops/cuda/gelu.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/kernel_common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using detail::map_elements;
using detail::vector_aligned;

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubicCoefficient = 0.044715f;

__device__ __forceinline__ float tanh_argument(float x) { return kSqrt2OverPi * (x + kCubicCoefficient * x * x * x); }

// 0.5·(1 + tanh(u)) = sigmoid(2u), the CPU kernel's form: no cancellation for large |x|. expf (not
// the faster __expf) keeps it within a few ulp of the CPU's polynomial exp.
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float gelu(float x) { return x * sigmoid(2.0f * tanh_argument(x)); }

// With s = sigmoid(2u): d/dx [x·s] = s + x · 2s(1 − s) · du/dx.
__device__ __forceinline__ float gelu_derivative(float x) {
  const float s = sigmoid(2.0f * tanh_argument(x));
  const float du_dx = kSqrt2OverPi * (1.0f + 3.0f * kCubicCoefficient * x * x);
  return s + 2.0f * x * s * (1.0f - s) * du_dx;
}

// Grid-stride walks (map_elements), 256 threads a block, by 16-byte vectors when the pointers allow.
template <class T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n, bool vectorized) {  // in place allowed
  map_elements(out, n, vectorized, [](float x) { return gelu(x); }, inp);
}

// With overwrite dinp is written without being read (it may start uninitialised).
template <class T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, int64_t n, bool overwrite, bool vectorized) {
  if (overwrite) {
    map_elements(dinp, n, vectorized, [](float x, float d) { return d * gelu_derivative(x); }, inp, dout);
  } else {
    map_elements(dinp, n, vectorized, [](float x, float d, float old) { return old + d * gelu_derivative(x); }, inp,
                 dout, static_cast<const T*>(dinp));
  }
}

template <class T>
void launch_forward(T* out, const T* inp, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const bool vectorized = vector_aligned(out, inp);
  gelu_forward_kernel<T><<<launch::vector_grid_blocks(n, vectorized), launch::kThreadsPerBlock, 0, stream>>>(
      out, inp, n, vectorized);
  MERIDIAN_CUDA_CHECK_LAUNCH("gelu_forward");
}

template <class T>
void launch_backward(T* dinp, const T* inp, const T* dout, int64_t n, cudaStream_t stream, bool overwrite) {
  if (n == 0) return;
  const bool vectorized = vector_aligned(dinp, inp, dout);
  gelu_backward_kernel<T><<<launch::vector_grid_blocks(n, vectorized), launch::kThreadsPerBlock, 0, stream>>>(
      dinp, inp, dout, n, overwrite, vectorized);
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

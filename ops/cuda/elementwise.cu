#include "ops/cuda/elementwise.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/kernel_common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using detail::grid_stride;
using detail::GridStride;
using detail::map_elements;
using detail::vector_aligned;

// Every kernel here is one grid-stride walk (kernel_common.cuh's map_elements), 256 threads a block,
// by 16-byte vectors when every pointer allows it. No __restrict__: outputs may alias inputs
// (element i is read and written by one thread).
template <class T>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t n, bool vectorized) {
  map_elements(out, n, vectorized, [](float x, float y) { return x + y; }, a, b);
}

// Dst and Src may differ: an fp32 master gradient accumulates a bf16 one (mixed precision).
template <class Dst, class Src>
__global__ void axpy_kernel(Dst* dst, const Src* src, float alpha, int64_t n, bool vectorized) {
  map_elements(dst, n, vectorized, [alpha](float y, float x) { return y + alpha * x; }, static_cast<const Dst*>(dst),
               src);
}

template <class T>
__global__ void scaled_copy_kernel(T* out, const T* x, float alpha, int64_t n, bool vectorized) {
  map_elements(out, n, vectorized, [alpha](float value) { return alpha * value; }, x);
}

// Round to nearest even (bf16) or widen exactly (fp32), as the cpu's convert_elements.
template <class Out, class In>
__global__ void convert_kernel(Out* out, const In* in, int64_t n, bool vectorized) {
  map_elements(out, n, vectorized, [](float value) { return value; }, in);
}

__global__ void fill_kernel(float* x, float value, int64_t n) {
  const GridStride walk = grid_stride();
  for (int64_t i = walk.first; i < n; i += walk.step) x[i] = value;
}

template <class T>
void launch_add(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const bool vectorized = vector_aligned(out, a, b);
  add_kernel<T><<<launch::vector_grid_blocks(n, vectorized), launch::kThreadsPerBlock, 0, stream>>>(out, a, b, n,
                                                                                                 vectorized);
  MERIDIAN_CUDA_CHECK_LAUNCH("add_forward");
}

template <class Dst, class Src>
void launch_axpy(Dst* dst, const Src* src, float alpha, int64_t n, cudaStream_t stream, const char* name) {
  if (n == 0) return;
  const bool vectorized = vector_aligned(dst, src);
  axpy_kernel<Dst, Src><<<launch::vector_grid_blocks(n, vectorized), launch::kThreadsPerBlock, 0, stream>>>(
      dst, src, alpha, n, vectorized);
  MERIDIAN_CUDA_CHECK_LAUNCH(name);
}

template <class T>
void launch_scaled_copy(T* out, const T* x, float alpha, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const bool vectorized = vector_aligned(out, x);
  scaled_copy_kernel<T><<<launch::vector_grid_blocks(n, vectorized), launch::kThreadsPerBlock, 0, stream>>>(
      out, x, alpha, n, vectorized);
  MERIDIAN_CUDA_CHECK_LAUNCH("scaled_copy");
}

template <class Out, class In>
void launch_convert(Out* out, const In* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const bool vectorized = vector_aligned(out, in);
  convert_kernel<Out, In><<<launch::vector_grid_blocks(n, vectorized), launch::kThreadsPerBlock, 0, stream>>>(
      out, in, n, vectorized);
  MERIDIAN_CUDA_CHECK_LAUNCH("convert");
}

template <class T>
void launch_add_backward(T* da, T* db, const T* dout, int64_t n, cudaStream_t stream) {
  if (da != nullptr) launch_axpy(da, dout, 1.0f, n, stream, "add_backward");
  if (db != nullptr) launch_axpy(db, dout, 1.0f, n, stream, "add_backward");
}

}  // namespace

void add_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  launch_add(out, a, b, n, stream);
}

void add_backward(float* da, float* db, const float* dout, int64_t n, cudaStream_t stream) {
  launch_add_backward(da, db, dout, n, stream);
}

void axpy(float* dst, const float* src, float alpha, int64_t n, cudaStream_t stream) {
  launch_axpy(dst, src, alpha, n, stream, "axpy");
}

void scale(float* x, float alpha, int64_t n, cudaStream_t stream) { scaled_copy(x, x, alpha, n, stream); }

void scaled_copy(float* out, const float* x, float alpha, int64_t n, cudaStream_t stream) {
  launch_scaled_copy(out, x, alpha, n, stream);
}

void fill(float* x, float value, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(x, value, n);
  MERIDIAN_CUDA_CHECK_LAUNCH("fill");
}

void add_forward(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* b, int64_t n, cudaStream_t stream) {
  launch_add(out, a, b, n, stream);
}

void add_backward(__nv_bfloat16* da, __nv_bfloat16* db, const __nv_bfloat16* dout, int64_t n, cudaStream_t stream) {
  launch_add_backward(da, db, dout, n, stream);
}

void axpy(__nv_bfloat16* dst, const __nv_bfloat16* src, float alpha, int64_t n, cudaStream_t stream) {
  launch_axpy(dst, src, alpha, n, stream, "axpy");
}

void axpy(float* dst, const __nv_bfloat16* src, float alpha, int64_t n, cudaStream_t stream) {
  launch_axpy(dst, src, alpha, n, stream, "axpy");
}

void axpy(__nv_bfloat16* dst, const float* src, float alpha, int64_t n, cudaStream_t stream) {
  launch_axpy(dst, src, alpha, n, stream, "axpy");
}

void scaled_copy(__nv_bfloat16* out, const __nv_bfloat16* x, float alpha, int64_t n, cudaStream_t stream) {
  launch_scaled_copy(out, x, alpha, n, stream);
}

void convert(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream) { launch_convert(out, in, n, stream); }

void convert(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream) { launch_convert(out, in, n, stream); }

}  // namespace meridian::ops::cuda

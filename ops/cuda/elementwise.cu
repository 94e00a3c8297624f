#include "ops/cuda/elementwise.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/kernel_common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using detail::from_float;
using detail::to_float;

// Every kernel here is one grid-stride loop, 256 threads a block (launch.cuh). No __restrict__:
// outputs may alias inputs (element i reads and writes only index i).
#define MERIDIAN_GRID_STRIDE_LOOP(i, n)                                                  \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <class T>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t n) {
  MERIDIAN_GRID_STRIDE_LOOP(i, n) out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

// Dst and Src may differ: an fp32 master gradient accumulates a bf16 one (mixed precision).
template <class Dst, class Src>
__global__ void axpy_kernel(Dst* dst, const Src* src, float alpha, int64_t n) {
  MERIDIAN_GRID_STRIDE_LOOP(i, n) dst[i] = from_float<Dst>(to_float(dst[i]) + alpha * to_float(src[i]));
}

template <class T>
__global__ void scaled_copy_kernel(T* out, const T* x, float alpha, int64_t n) {
  MERIDIAN_GRID_STRIDE_LOOP(i, n) out[i] = from_float<T>(alpha * to_float(x[i]));
}

// Round to nearest even (bf16) or widen exactly (fp32), as the cpu's convert_elements.
template <class Out, class In>
__global__ void convert_kernel(Out* out, const In* in, int64_t n) {
  MERIDIAN_GRID_STRIDE_LOOP(i, n) out[i] = from_float<Out>(to_float(in[i]));
}

__global__ void fill_kernel(float* x, float value, int64_t n) { MERIDIAN_GRID_STRIDE_LOOP(i, n) x[i] = value; }

#undef MERIDIAN_GRID_STRIDE_LOOP

template <class T>
void launch_add(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<T><<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(out, a, b, n);
  MERIDIAN_CUDA_CHECK_LAUNCH("add_forward");
}

template <class Dst, class Src>
void launch_axpy(Dst* dst, const Src* src, float alpha, int64_t n, cudaStream_t stream, const char* name) {
  if (n == 0) return;
  axpy_kernel<Dst, Src><<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(dst, src, alpha, n);
  MERIDIAN_CUDA_CHECK_LAUNCH(name);
}

template <class T>
void launch_scaled_copy(T* out, const T* x, float alpha, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  scaled_copy_kernel<T><<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(out, x, alpha, n);
  MERIDIAN_CUDA_CHECK_LAUNCH("scaled_copy");
}

template <class Out, class In>
void launch_convert(Out* out, const In* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  convert_kernel<Out, In><<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(out, in, n);
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

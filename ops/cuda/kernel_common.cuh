#pragma once
// Small pieces shared by the kernels (device code only, so it is included from .cu files): fp32 ⇄
// storage-type conversion, 16-byte vector accesses, warp reductions, and the launch checks.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda::detail {

// Kernels read fp32 or bf16 storage and always compute in fp32.
__device__ __forceinline__ float to_float(float value) { return value; }
__device__ __forceinline__ float to_float(__nv_bfloat16 value) { return __bfloat162float(value); }

template <class Element>
__device__ __forceinline__ Element from_float(float value);
template <>
__device__ __forceinline__ float from_float<float>(float value) {
  return value;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float value) {
  return __float2bfloat16_rn(value);
}

// Eight consecutive elements (16 bytes of bf16, 32 of fp32), moved with 16-byte loads and stores:
// a memory-bound kernel gets near the H200's bandwidth with wide accesses, not with 2-byte ones.
// Every pointer so accessed must be 16-byte aligned at the vector's first element (vector_aligned on
// the base pointers; vectors then start at multiples of eight elements).
constexpr int kVectorElements = 8;
template <class T>
struct alignas(16) Vector {
  T values[kVectorElements];
};

template <class T>
__device__ __forceinline__ Vector<T> load_vector(const T* pointer) {
  Vector<T> vector;
  constexpr int kWords = sizeof(Vector<T>) / sizeof(int4);
  for (int w = 0; w < kWords; ++w) reinterpret_cast<int4*>(&vector)[w] = reinterpret_cast<const int4*>(pointer)[w];
  return vector;
}

template <class T>
__device__ __forceinline__ void store_vector(T* pointer, const Vector<T>& vector) {
  constexpr int kWords = sizeof(Vector<T>) / sizeof(int4);
  for (int w = 0; w < kWords; ++w) reinterpret_cast<int4*>(pointer)[w] = reinterpret_cast<const int4*>(&vector)[w];
}

// Whether every pointer allows 16-byte vectors (a null one does: nothing is accessed through it).
template <class... Pointers>
bool vector_aligned(const Pointers*... pointers) {
  return ((reinterpret_cast<uintptr_t>(pointers) % 16 == 0) && ...);
}

// pointer[0 … kWidth) as floats, and back: one 16-byte vector when kWidth is kVectorElements (the
// pointer then 16-byte aligned), else kWidth single elements.
template <int kWidth, class T>
__device__ __forceinline__ void load_floats(float (&values)[kWidth], const T* pointer) {
  if constexpr (kWidth == kVectorElements) {
    const Vector<T> vector = load_vector(pointer);
    for (int k = 0; k < kWidth; ++k) values[k] = to_float(vector.values[k]);
  } else {
    for (int k = 0; k < kWidth; ++k) values[k] = to_float(pointer[k]);
  }
}

template <int kWidth, class T>
__device__ __forceinline__ void store_floats(T* pointer, const float (&values)[kWidth]) {
  if constexpr (kWidth == kVectorElements) {
    Vector<T> vector;
    for (int k = 0; k < kWidth; ++k) vector.values[k] = from_float<T>(values[k]);
    store_vector(pointer, vector);
  } else {
    for (int k = 0; k < kWidth; ++k) pointer[k] = from_float<T>(values[k]);
  }
}

// A grid-stride walk over n elements split as the vectorized kernels split it: with `vectorized`,
// whole vectors first (vector v covers elements 8v … 8v + 7), then the n mod 8 elements left one by
// one; otherwise every element one by one.
struct GridStride {
  int64_t first;
  int64_t step;
};
__device__ __forceinline__ GridStride grid_stride() {
  return {static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x, static_cast<int64_t>(gridDim.x) * blockDim.x};
}
__device__ __forceinline__ int64_t whole_vectors(int64_t n, bool vectorized) {
  return vectorized ? n / kVectorElements : 0;
}

// out[i] = op(in[i]...) as a float for every i < n, over the grid: by vectors of eight when
// `vectorized` (every pointer vector_aligned), the rest one by one. `out` may be one of the inputs
// (each element is read and written by one thread, in that order).
template <class Out, class Op, class... In>
__device__ __forceinline__ void map_elements(Out* out, int64_t n, bool vectorized, Op op, const In*... in) {
  const GridStride walk = grid_stride();
  const int64_t vectors = whole_vectors(n, vectorized);
  for (int64_t v = walk.first; v < vectors; v += walk.step) {
    const int64_t first = v * kVectorElements;
    Vector<Out> result;
    [&](const Vector<In>&... loaded) {
      for (int k = 0; k < kVectorElements; ++k) result.values[k] = from_float<Out>(op(to_float(loaded.values[k])...));
    }(load_vector(in + first)...);
    store_vector(out + first, result);
  }
  for (int64_t i = vectors * kVectorElements + walk.first; i < n; i += walk.step) {
    out[i] = from_float<Out>(op(to_float(in[i])...));
  }
}

constexpr int kWarpSize = 32;
constexpr unsigned kFullWarp = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullWarp, value, offset);
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    value = fmaxf(value, __shfl_xor_sync(kFullWarp, value, offset));
  }
  return value;
}

// Throws if the launch just made failed (bad configuration, too much shared memory, a sticky
// error from an earlier kernel). `what` names the kernel and its shapes; the message also names the
// device and the rank (error_context).
inline void check_launch(const std::string& what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(what + ": kernel launch failed: " + cudaGetErrorString(status) + error_context());
  }
}

// Throws naming `what`, the error, the device and the rank. The error is cleared first: a non-sticky
// one (out of memory) must not resurface as the failure of the next, unrelated launch.
inline void check_cuda(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(what + ": " + cudaGetErrorString(status) + error_context());
  }
}

}  // namespace meridian::ops::cuda::detail

#pragma once
// Small pieces shared by the matmul, attention and cross-entropy kernels (device code only, so it is
// included from .cu files): fp32 ⇄ storage-type conversion, warp reductions, and the launch check.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

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

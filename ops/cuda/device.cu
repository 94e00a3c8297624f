#include "ops/cuda/device.h"

#include <cuda_runtime.h>

namespace meridian::ops::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return 0;
  }
  return count;
}

std::string unavailable_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string("CUDA unavailable: ") + cudaGetErrorString(status);
  }
  return count == 0 ? "no CUDA device visible" : "";
}

}  // namespace meridian::ops::cuda

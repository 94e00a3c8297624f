#include "launcher/device_binding.h"

#include "core/error.h"

#if MERIDIAN_CUDA
#include <cuda_runtime_api.h>

#include "ops/cuda/device.h"
#include "ops/cuda/runtime.h"
#endif

namespace meridian::launcher {

Device bind_device(DeviceKind kind, int world_rank, int local_rank, const std::string& host) {
  if (kind == DeviceKind::cpu) return Device::cpu();
  const std::string where = detail::concat("rank ", world_rank, " on host ", host,
                                           ": --device cuda needs cuda:", local_rank,
                                           " (node-local rank ", local_rank, ")");
#if MERIDIAN_CUDA
  ops::cuda::set_process_rank(world_rank);  // CUDA errors from now on name this rank
  const int visible = ops::cuda::device_count();
  if (visible == 0) MERIDIAN_FAIL(where, " but ", ops::cuda::unavailable_reason());
  if (local_rank >= visible)
    MERIDIAN_FAIL(where, " but only ", visible, visible == 1 ? " GPU is" : " GPUs are",
                  " visible: start at most ", visible, " ranks per node");
  if (const cudaError_t status = cudaSetDevice(local_rank); status != cudaSuccess)
    MERIDIAN_FAIL(where, " but cudaSetDevice(", local_rank,
                  ") failed: ", cudaGetErrorString(status));
  return Device::cuda(local_rank);
#else
  MERIDIAN_FAIL(where, " but this build has no CUDA backend (configure with the CUDA toolkit)");
#endif
}

}  // namespace meridian::launcher

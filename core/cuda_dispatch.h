#pragma once
// How core/ reaches the CUDA kernels (see docs/cuda.md, "Tensors and functions on the GPU").
//
// With the CUDA backend built (MERIDIAN_CUDA), meridian_core links meridian_ops_cuda and calls its
// kernels directly: a differentiable function looks at its input's device and runs the ops/cpu
// kernel or its ops/cuda twin, forward and backward. core includes only ops/cuda headers, which
// include no CUDA header (ops/cuda/stream.h declares cudaStream_t), so core stays plain C++20 and
// the dependency stays one-way (core → ops). Without the backend this header declares nothing and
// every `#if MERIDIAN_CUDA` branch compiles away; no cuda tensor can exist then (allocator_for
// refuses the device), so the cpu path is the only one.
#include "core/device.h"

#if MERIDIAN_CUDA
#include "ops/cuda/runtime.h"

namespace meridian::detail {

// For the duration of one operation on a cuda tensor: makes its device current (kernels and
// cuBLASLt act on the current device) and names the device's compute stream, the one stream all of
// its kernels and copies are ordered on (ops/cuda/runtime.h). Switching back afterwards keeps the
// caller's current device as it was.
class CudaScope {
 public:
  explicit CudaScope(Device device)
      : guard_(device.index), stream_(ops::cuda::compute_stream(device.index)) {}
  cudaStream_t stream() const { return stream_; }

 private:
  ops::cuda::DeviceGuard guard_;
  cudaStream_t stream_;
};

}  // namespace meridian::detail
#endif

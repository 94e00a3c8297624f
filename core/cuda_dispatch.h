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
#include "core/dtype.h"

#include <cstdint>

#if MERIDIAN_CUDA
#include "core/error.h"
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

// Runs `body.template operator()<Element>()` with the kernel element type of `dtype`: float for f32,
// __nv_bfloat16 (declared by ops/cuda/stream.h; core only passes pointers to it) for bf16.
template <class Body>
void dispatch_float(DType dtype, Body&& body) {
  if (dtype == DType::f32) {
    body.template operator()<float>();
  } else if (dtype == DType::bf16) {
    body.template operator()<__nv_bfloat16>();
  } else {
    MERIDIAN_FAIL("no CUDA kernels for dtype ", dtype_name(dtype), " (f32 and bf16 only)");
  }
}

// The device memory of a tensor as kernel elements, from element `offset` on; null for an undefined
// tensor (an optional output). Callers have checked the dtype. (Offsets go through bytes: core cannot
// do pointer arithmetic on the incomplete __nv_bfloat16.)
template <class Element, class TensorLike>
Element* element_ptr(const TensorLike& t, int64_t offset = 0) {
  if (!t.defined()) return nullptr;
  return reinterpret_cast<Element*>(static_cast<char*>(t.raw_data()) +
                                    offset * static_cast<int64_t>(dtype_size(t.dtype())));
}

}  // namespace meridian::detail
#endif

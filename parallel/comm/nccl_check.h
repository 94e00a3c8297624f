#pragma once
// MERIDIAN_NCCL_CHECK / MERIDIAN_COMM_CUDA_CHECK: every NCCL and CUDA runtime call of the NCCL
// backend is checked; a failure throws meridian::Error naming the call, the library's description
// of the error, the world rank and the source location.
#include <cuda_runtime_api.h>
#include <nccl.h>

namespace meridian::comm::checks {

[[noreturn]] void throw_nccl_error(const char* call, ncclResult_t status, const char* file,
                                   int line);
[[noreturn]] void throw_cuda_error(const char* call, cudaError_t status, const char* file,
                                   int line);

}  // namespace meridian::comm::checks

#define MERIDIAN_NCCL_CHECK(call)                                                        \
  do {                                                                                   \
    const ncclResult_t meridian_nccl_status_ = (call);                                   \
    if (meridian_nccl_status_ != ncclSuccess)                                            \
      ::meridian::comm::checks::throw_nccl_error(#call, meridian_nccl_status_, __FILE__, \
                                                 __LINE__);                              \
  } while (0)

#define MERIDIAN_COMM_CUDA_CHECK(call)                                                   \
  do {                                                                                   \
    const cudaError_t meridian_cuda_status_ = (call);                                    \
    if (meridian_cuda_status_ != cudaSuccess)                                            \
      ::meridian::comm::checks::throw_cuda_error(#call, meridian_cuda_status_, __FILE__, \
                                                 __LINE__);                              \
  } while (0)

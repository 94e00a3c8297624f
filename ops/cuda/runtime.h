#pragma once
// The CUDA runtime as Meridian's kernels and allocator use it: checked calls whose errors name the
// call, the device and the MPI rank; device selection that fails clearly; one compute stream per
// device; host ⇄ device copies ordered on a stream. This header includes no CUDA header, so plain
// C++ (core/, launcher/) can include it; the check macros need <cuda_runtime.h> where they are used.
#include <cstddef>
#include <string>

#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

// Which world rank this process is, for error messages; the launcher calls it once it knows (only
// launcher/ reads the environment).
void set_process_rank(int rank);

// " (device cuda:D on rank R)": the calling thread's current device and, when the process runs under
// mpirun, its world rank (once the launcher has called set_process_rank). Every CUDA error carries it.
std::string error_context();

// Throws meridian::Error "<call> failed: <cudaErrorName>: <error string> (device cuda:D on rank R)
// at file:line". `status` is a cudaError_t; it is cleared first so later calls start clean.
[[noreturn]] void throw_cuda_error(const char* call, int status, const char* file, int line);

// Throws the error of the kernel launch just made (bad launch configuration, or a sticky error left by
// an earlier kernel), naming the kernel. Launch errors are otherwise silent until a later call.
void check_launch(const char* kernel, const char* file, int line);

// Throws meridian::Error naming the index, the number of visible devices and the rank when `index` is
// out of range, and naming the driver's answer when no CUDA driver or device is usable.
void check_device_index(int index);
// Makes `index` the calling thread's device, after check_device_index.
void set_device(int index);
int current_device();

// The stream every kernel of that device runs on (created on first use, never destroyed: the driver
// may already be shut down when static destructors run). Created *blocking* with respect to the
// legacy default stream, so that synchronous cudaMemcpy/cudaMemset, which run on the default
// stream, stay ordered with the kernels instead of racing them.
cudaStream_t compute_stream(int device_index);
cudaStream_t compute_stream();  // of the current device

// Stream-ordered copies. Truly asynchronous only for pinned host memory; with pageable memory the
// driver stages the data and may return early, so the host buffer of copy_to_host may be read only
// after synchronize(stream).
void copy_to_device(void* device_destination, const void* host_source, size_t bytes, cudaStream_t stream);
void copy_to_host(void* host_destination, const void* device_source, size_t bytes, cudaStream_t stream);
// Device → device on the same device (a tensor copy), and bytes = 0 (zero-filled tensors, gradient
// buffers), both ordered on the stream.
void copy_on_device(void* device_destination, const void* device_source, size_t bytes, cudaStream_t stream);
void zero_bytes(void* device_destination, size_t bytes, cudaStream_t stream);
// `height` rows of `width` bytes, device → device on one device, rows `destination_pitch` and
// `source_pitch` bytes apart (cudaMemcpy2DAsync): a strided gather or scatter of whole rows.
void copy_rows_on_device(void* device_destination, size_t destination_pitch, const void* device_source,
                         size_t source_pitch, size_t width, size_t height, cudaStream_t stream);
// Waits for everything queued on the stream, turning a kernel's asynchronous error into an exception.
void synchronize(cudaStream_t stream);

// Makes a device current for a scope and restores the previous one (allocator and stream creation
// act on a given device whatever the caller's current device is).
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
  bool switched_;
};

}  // namespace meridian::ops::cuda

// Checks a CUDA runtime call: MERIDIAN_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream));
#define MERIDIAN_CUDA_CHECK(call)                                                                                  \
  do {                                                                                                             \
    const cudaError_t meridian_cuda_status_ = (call);                                                              \
    if (meridian_cuda_status_ != cudaSuccess)                                                                      \
      ::meridian::ops::cuda::throw_cuda_error(#call, static_cast<int>(meridian_cuda_status_), __FILE__, __LINE__); \
  } while (0)

// After kernel<<<grid, block, 0, stream>>>(...): MERIDIAN_CUDA_CHECK_LAUNCH("layernorm_forward").
#define MERIDIAN_CUDA_CHECK_LAUNCH(kernel) ::meridian::ops::cuda::check_launch(kernel, __FILE__, __LINE__)

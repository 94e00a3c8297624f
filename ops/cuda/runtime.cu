#include "ops/cuda/runtime.h"

#include <cuda_runtime.h>

#include <atomic>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace meridian::ops::cuda {
namespace {

// The world rank from the MPI launcher's environment (Open MPI, then MPICH/Hydra); empty when the
// process was not started by mpirun. Read here rather than passed in because an error may be raised
// before the launcher has told anyone its rank.
// The world rank the launcher reported (set_process_rank), or -1 before it has.
std::atomic<int> g_process_rank{-1};

// " on rank R" once the launcher has said which rank this process is, else empty.
std::string rank_suffix() {
  const int rank = g_process_rank.load();
  return rank < 0 ? "" : " on rank " + std::to_string(rank);
}

std::string visible_devices_note() {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  return visible == nullptr ? "" : std::string(", CUDA_VISIBLE_DEVICES=") + visible;
}

// Number of usable devices, or a meridian::Error saying why there are none usable for `index`.
int checked_device_count(int index) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear it so later calls start clean
    MERIDIAN_FAIL("cannot use CUDA device cuda:", index, rank_suffix(), ": no usable CUDA driver or GPU (",
                  cudaGetErrorName(status), ": ", cudaGetErrorString(status), visible_devices_note(), ")");
  }
  return count;
}

}  // namespace

void set_process_rank(int rank) { g_process_rank.store(rank); }

void check_device_index(int index) {
  const int count = checked_device_count(index);
  if (index < 0 || index >= count)
    MERIDIAN_FAIL("CUDA device index ", index, rank_suffix(), " is out of range: ", count, " device(s) visible",
                  count > 0 ? " (cuda:0 … cuda:" + std::to_string(count - 1) + ")" : std::string(),
                  visible_devices_note());
}

std::string error_context() {
  int device = -1;
  const bool known = cudaGetDevice(&device) == cudaSuccess;
  if (!known) cudaGetLastError();
  return " (device " + (known ? "cuda:" + std::to_string(device) : std::string("unknown")) + rank_suffix() + ")";
}

void throw_cuda_error(const char* call, int status, const char* file, int line) {
  const auto error = static_cast<cudaError_t>(status);
  cudaGetLastError();  // a non-sticky error (e.g. out of memory) must not fail the next, unrelated call
  MERIDIAN_FAIL(call, " failed: ", cudaGetErrorName(error), ": ", cudaGetErrorString(error), error_context(), " at ",
                file, ":", line);
}

void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    MERIDIAN_FAIL("launch of CUDA kernel ", kernel, " failed: ", cudaGetErrorName(status), ": ",
                  cudaGetErrorString(status), error_context(), " at ", file, ":", line);
}

void set_device(int index) {
  check_device_index(index);
  MERIDIAN_CUDA_CHECK(cudaSetDevice(index));
}

int current_device() {
  int device = 0;
  const cudaError_t status = cudaGetDevice(&device);
  if (status != cudaSuccess) {
    cudaGetLastError();
    MERIDIAN_FAIL("no current CUDA device", rank_suffix(), ": no usable CUDA driver or GPU (", cudaGetErrorName(status),
                  ": ", cudaGetErrorString(status), visible_devices_note(), ")");
  }
  return device;
}

cudaStream_t compute_stream(int device_index) {
  static std::mutex mutex;
  // By device index, null until first use; kept for the process's life (never destroyed, so still
  // reachable at exit: no leak report).
  static auto* const streams = new std::vector<cudaStream_t>;
  std::lock_guard<std::mutex> lock(mutex);
  const auto slot = static_cast<size_t>(device_index);
  // Every launch asks for the stream: the common case is a lookup, with no driver call.
  if (device_index >= 0 && slot < streams->size() && (*streams)[slot] != nullptr) return (*streams)[slot];
  check_device_index(device_index);
  if (streams->size() <= slot) streams->resize(slot + 1, nullptr);
  const DeviceGuard guard(device_index);  // a stream belongs to the device current at its creation
  MERIDIAN_CUDA_CHECK(cudaStreamCreateWithFlags(&(*streams)[slot], cudaStreamDefault));
  return (*streams)[slot];
}

cudaStream_t compute_stream() { return compute_stream(current_device()); }

void copy_to_device(void* device_destination, const void* host_source, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  MERIDIAN_CUDA_CHECK(cudaMemcpyAsync(device_destination, host_source, bytes, cudaMemcpyHostToDevice, stream));
}

void copy_to_host(void* host_destination, const void* device_source, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  MERIDIAN_CUDA_CHECK(cudaMemcpyAsync(host_destination, device_source, bytes, cudaMemcpyDeviceToHost, stream));
}

void copy_on_device(void* device_destination, const void* device_source, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  MERIDIAN_CUDA_CHECK(cudaMemcpyAsync(device_destination, device_source, bytes, cudaMemcpyDeviceToDevice, stream));
}

void copy_rows_on_device(void* device_destination, size_t destination_pitch, const void* device_source,
                         size_t source_pitch, size_t width, size_t height, cudaStream_t stream) {
  if (width == 0 || height == 0) return;
  MERIDIAN_CUDA_CHECK(cudaMemcpy2DAsync(device_destination, destination_pitch, device_source, source_pitch, width,
                                        height, cudaMemcpyDeviceToDevice, stream));
}

void zero_bytes(void* device_destination, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  MERIDIAN_CUDA_CHECK(cudaMemsetAsync(device_destination, 0, bytes, stream));
}

void synchronize(cudaStream_t stream) { MERIDIAN_CUDA_CHECK(cudaStreamSynchronize(stream)); }

DeviceGuard::DeviceGuard(int index) : previous_(current_device()), switched_(previous_ != index) {
  if (switched_) set_device(index);
}

DeviceGuard::~DeviceGuard() {
  // Destructors must not throw; restoring a device that was valid a moment ago does not fail short of
  // a lost driver, which the next checked call reports anyway.
  if (switched_ && cudaSetDevice(previous_) != cudaSuccess) cudaGetLastError();
}

}  // namespace meridian::ops::cuda

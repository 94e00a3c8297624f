#include "ops/cuda/stream_clock.h"

#include <cuda_runtime.h>

#include <chrono>

#include "core/error.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {

namespace {

int64_t host_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

cudaEvent_t new_event() {
  cudaEvent_t event = nullptr;
  MERIDIAN_CUDA_CHECK(cudaEventCreate(&event));  // with timing (cudaEventDisableTiming would refuse ElapsedTime)
  return event;
}

}  // namespace

StreamClock::StreamClock(int device_index) : device_(device_index), stream_(compute_stream(device_index)) {
  DeviceGuard guard(device_);  // events belong to the device current when they are created
  reference_ = new_event();
}

StreamClock::~StreamClock() {
  DeviceGuard guard(device_);
  cudaEventDestroy(reference_);
  for (cudaEvent_t event : events_) cudaEventDestroy(event);
}

int64_t StreamClock::anchor() {
  DeviceGuard guard(device_);
  MERIDIAN_CUDA_CHECK(cudaEventRecord(reference_, stream_));
  MERIDIAN_CUDA_CHECK(cudaEventSynchronize(reference_));
  anchor_ns_ = host_now_ns();
  anchored_ = true;
  used_ = 0;
  return anchor_ns_;
}

size_t StreamClock::mark() {
  MERIDIAN_CHECK(anchored_, "StreamClock on cuda:", device_, ": mark() before anchor()");
  DeviceGuard guard(device_);
  if (used_ == events_.size()) events_.push_back(new_event());
  MERIDIAN_CUDA_CHECK(cudaEventRecord(events_[used_], stream_));
  return used_++;
}

std::vector<int64_t> StreamClock::times() {
  MERIDIAN_CHECK(anchored_, "StreamClock on cuda:", device_, ": times() before anchor()");
  DeviceGuard guard(device_);
  std::vector<int64_t> times(used_);
  if (used_ == 0) return times;
  MERIDIAN_CUDA_CHECK(cudaEventSynchronize(events_[used_ - 1]));  // stream order: every earlier mark is passed too
  for (size_t i = 0; i < used_; ++i) {
    float ms = 0.0f;
    MERIDIAN_CUDA_CHECK(cudaEventElapsedTime(&ms, reference_, events_[i]));
    times[i] = anchor_ns_ + static_cast<int64_t>(static_cast<double>(ms) * 1e6);
  }
  return times;
}

}  // namespace meridian::ops::cuda

#include "ops/cuda/caching_allocator.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {

CudaCachingAllocator::CudaCachingAllocator(int device_index) : device_index_(device_index) {
  check_device_index(device_index);
}

CudaCachingAllocator::~CudaCachingAllocator() {
  std::lock_guard<std::mutex> lock(mutex_);
  // No throwing from a destructor: a failed cudaFree here only leaks memory the process is giving up.
  try {
    release_cached_locked();
  } catch (const Error&) {
  }
}

size_t CudaCachingAllocator::rounded_size(size_t nbytes) {
  const size_t size = std::max<size_t>(nbytes, 1);
  const size_t granularity = size < kLargeThreshold ? kSmallGranularity : kLargeGranularity;
  return (size + granularity - 1) / granularity * granularity;
}

void* CudaCachingAllocator::allocate(size_t nbytes) {
  const size_t size = rounded_size(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* ptr = nullptr;
  size_t block_size = size;
  // The smallest cached block that fits, unless it is more than 1/8 larger than the request (a small
  // request must not pin a large block).
  const auto fit = free_blocks_.lower_bound(size);
  if (fit != free_blocks_.end() && fit->first <= size + size / 8) {
    block_size = fit->first;
    ptr = fit->second;
    free_blocks_.erase(fit);
    cached_bytes_ -= block_size;
  } else {
    ptr = device_malloc_locked(size, nbytes);
  }
  live_blocks_.emplace(ptr, block_size);
  stats_.allocated_bytes += block_size;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return ptr;
}

void CudaCachingAllocator::deallocate(void* ptr, size_t nbytes) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto live = live_blocks_.find(ptr);
  // (MERIDIAN_FAIL, not MERIDIAN_CHECK: this library does not link meridian_core, which defines the latter's
  // throw helper.)
  if (live == live_blocks_.end() || rounded_size(nbytes) > live->second)
    MERIDIAN_FAIL("CUDA caching allocator of cuda:", device_index_, ": asked to free ", ptr, " (", nbytes,
                  " bytes), which it did not allocate, already freed, or allocated smaller");
  const size_t block_size = live->second;
  live_blocks_.erase(live);
  stats_.allocated_bytes -= block_size;
  // No cudaFree: the block is reused in stream order (see the header).
  free_blocks_.emplace(block_size, ptr);
  cached_bytes_ += block_size;
}

MemoryStats CudaCachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  MemoryStats out = stats_;
  out.reserved_bytes = stats_.allocated_bytes + cached_bytes_;
  return out;
}

void CudaCachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
}

void CudaCachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

size_t CudaCachingAllocator::device_allocation_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return device_allocations_;
}

void* CudaCachingAllocator::device_malloc_locked(size_t block_size, size_t requested) {
  const DeviceGuard guard(device_index_);  // cudaMalloc allocates on the current device
  void* ptr = nullptr;
  cudaError_t status = cudaMalloc(&ptr, block_size);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // out of memory is not sticky: clear it and try again with the cache freed
    release_cached_locked();
    status = cudaMalloc(&ptr, block_size);
  }
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) cudaGetLastError();
    MERIDIAN_FAIL("CUDA out of memory", error_context(), ": cannot allocate ", requested, " bytes (a block of ",
                  block_size, "); this allocator has ", stats_.allocated_bytes, " bytes allocated and ",
                  stats_.allocated_bytes + cached_bytes_, " bytes reserved after releasing its cache; the device has ",
                  free_bytes, " of ", total_bytes, " bytes free");
  }
  if (status != cudaSuccess) throw_cuda_error("cudaMalloc", static_cast<int>(status), __FILE__, __LINE__);
  ++device_allocations_;
  return ptr;
}

void CudaCachingAllocator::release_cached_locked() {
  if (free_blocks_.empty()) return;
  const DeviceGuard guard(device_index_);
  // cudaFree waits for the device to go idle first, so no queued kernel still reads a freed block.
  while (!free_blocks_.empty()) {
    const auto [size, block] = *free_blocks_.begin();
    free_blocks_.erase(free_blocks_.begin());
    cached_bytes_ -= size;
    MERIDIAN_CUDA_CHECK(cudaFree(block));
  }
}

Allocator* cuda_caching_allocator(int device_index) {
  static std::mutex mutex;
  // Never destroyed (see the header); indexed by device.
  static auto* allocators = new std::vector<CudaCachingAllocator*>();
  std::lock_guard<std::mutex> lock(mutex);
  const auto slot = static_cast<size_t>(device_index);
  if (device_index >= 0 && slot < allocators->size() && (*allocators)[slot] != nullptr) return (*allocators)[slot];
  auto* allocator = new CudaCachingAllocator(device_index);  // checks the index
  if (allocators->size() <= slot) allocators->resize(slot + 1, nullptr);
  (*allocators)[slot] = allocator;
  return allocator;
}

}  // namespace meridian::ops::cuda

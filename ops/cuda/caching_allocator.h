#pragma once
// A stream-ordered caching allocator for CUDA device memory, one per device.
//
// A training step allocates the same sizes every time, and cudaMalloc/cudaFree are slow and
// synchronise the device, so freed blocks are kept on a free list by size and handed out again: once
// warm, a step makes no cudaMalloc or cudaFree call at all.
//
// Stream order. Every block belongs to the device's compute stream (ops/cuda/runtime.h), the one
// stream all kernels of that device run on. When a tensor dies the host returns its block at once,
// while kernels that read it may still be queued; that is safe because the next owner's kernels are
// queued behind them on the same stream. Work on another stream (a communication stream) must keep
// the tensor alive until that stream has finished with it (wait on its event first).
//
// Blocks are not split: requests under 1 MiB are rounded up to 512 bytes, larger ones to 2 MiB, and a
// request takes the smallest cached block of at least its rounded size and at most 1/8 larger.
// When cudaMalloc fails the cache is released (cudaFree synchronises the device, so no queued kernel
// still uses a block) and the allocation retried once; a second failure throws meridian::Error
// "CUDA out of memory" naming the device, the rank, the requested bytes and this allocator's
// allocated and reserved bytes.
//
// This file is compiled by the host C++ compiler (.cpp): it has no device code, and core/allocator.h
// is C++20, while nvcc compiles this folder's .cu files as C++17.
#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/allocator.h"

namespace meridian::ops::cuda {

class CudaCachingAllocator final : public Allocator {
 public:
  // Throws meridian::Error when the device index is out of range or no CUDA driver is usable.
  explicit CudaCachingAllocator(int device_index);
  ~CudaCachingAllocator() override;  // frees the cached blocks; live blocks belong to their owners
  CudaCachingAllocator(const CudaCachingAllocator&) = delete;
  CudaCachingAllocator& operator=(const CudaCachingAllocator&) = delete;

  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  MemoryStats stats() const override;
  void reset_peak() override;
  void release_cached() override;

  int device_index() const { return device_index_; }
  // cudaMalloc calls made so far: flat once the allocator is warm (tests and benchmarks read it).
  size_t device_allocation_count() const;

  // The block size a request of nbytes gets (at least one granule, even for 0 bytes).
  static size_t rounded_size(size_t nbytes);
  static constexpr size_t kSmallGranularity = 512;
  static constexpr size_t kLargeThreshold = size_t{1} << 20;
  static constexpr size_t kLargeGranularity = size_t{2} << 20;

 private:
  void* device_malloc_locked(size_t block_size, size_t requested);
  void release_cached_locked();

  const int device_index_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_blocks_;       // block size → cached block
  std::unordered_map<void*, size_t> live_blocks_;  // block → its size
  size_t cached_bytes_ = 0;
  size_t device_allocations_ = 0;
  MemoryStats stats_;
};

// The process-wide allocator of a device, created on first use and never destroyed (tensors held by
// other statics may be freed during exit). Throws as the constructor does.
Allocator* cuda_caching_allocator(int device_index);

// Makes meridian::allocator_for(Device::cuda(i)) return cuda_caching_allocator(i). Call it once at
// startup, before the first CUDA tensor (the launcher will, for --device cuda; so may a test main);
// calling it again is harmless.
//
// An explicit call, not a self-registering static object: the linker drops an object file of a static
// library that nothing references, so such a registration would silently never run. Inline, so that
// meridian_ops_cuda does not link meridian_core (which defines register_cuda_allocator); the caller
// links core anyway.
inline void install_cuda_allocator() { ::meridian::register_cuda_allocator(&cuda_caching_allocator); }

}  // namespace meridian::ops::cuda

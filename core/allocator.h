#pragma once
// Memory for tensors goes through one allocator per device. On the CPU a caching allocator keeps
// freed blocks by size so that a training step, which allocates the same shapes every time, stops
// paying for fresh pages (page faults on multi-megabyte buffers cost more than the kernels).
#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace meridian {

struct MemoryStats {
  size_t allocated_bytes = 0;       // live tensor memory now
  size_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes since the last reset
  size_t reserved_bytes = 0;        // allocated plus cached-but-free
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void release_cached() = 0;  // hand cached blocks back to the system
};

Allocator& allocator_for(Device device);

// Hooks the CUDA backend installs when it is built; nullptr until then.
void register_cuda_allocator(Allocator* (*factory)(int device_index));

// Alignment of every CPU block: one cache line, and enough for 512-bit vector loads.
inline constexpr size_t kCpuAlignment = 64;

}  // namespace meridian

#include "core/allocator.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/error.h"

#if MERIDIAN_CUDA
#include "ops/cuda/caching_allocator.h"
#endif

namespace meridian {
namespace {

class CpuCachingAllocator final : public Allocator {
 public:
  ~CpuCachingAllocator() override { release_cached(); }

  void* allocate(size_t nbytes) override {
    const size_t size = rounded(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void* ptr = nullptr;
    auto it = free_blocks_.find(size);
    if (it != free_blocks_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= size;
    } else {
      ptr = std::aligned_alloc(kCpuAlignment, size);
      if (!ptr) {
        release_cached_locked();
        ptr = std::aligned_alloc(kCpuAlignment, size);
      }
      if (!ptr)
        MERIDIAN_FAIL("out of host memory allocating ", nbytes, " bytes (", stats_.allocated_bytes,
                      " bytes already allocated)");
    }
    stats_.allocated_bytes += size;
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
    return ptr;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    const size_t size = rounded(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.allocated_bytes -= size;
    free_blocks_[size].push_back(ptr);
    cached_bytes_ += size;
  }

  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    MemoryStats out = stats_;
    out.reserved_bytes = stats_.allocated_bytes + cached_bytes_;
    return out;
  }

  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

  void release_cached() override {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached_locked();
  }

 private:
  static size_t rounded(size_t nbytes) {
    const size_t size = std::max<size_t>(nbytes, 1);
    return (size + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  }

  void release_cached_locked() {
    for (auto& [size, blocks] : free_blocks_)
      for (void* block : blocks) std::free(block);
    free_blocks_.clear();
    cached_bytes_ = 0;
  }

  mutable std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_blocks_;
  size_t cached_bytes_ = 0;
  MemoryStats stats_;
};

// With the CUDA backend built, cuda tensors use its stream-ordered caching allocator from the start
// (register_cuda_allocator may still replace it, e.g. in a test).
#if MERIDIAN_CUDA
Allocator* (*g_cuda_allocator_factory)(int) = &ops::cuda::cuda_caching_allocator;
#else
Allocator* (*g_cuda_allocator_factory)(int) = nullptr;
#endif

}  // namespace

void register_cuda_allocator(Allocator* (*factory)(int device_index)) {
  g_cuda_allocator_factory = factory;
}

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) {
    // Never destroyed: tensors held by other statics may be freed during exit.
    static auto* cpu = new CpuCachingAllocator();
    return *cpu;
  }
  if (!g_cuda_allocator_factory)
    MERIDIAN_FAIL("device ", device.to_string(), " requested but Meridian was built without CUDA");
  return *g_cuda_allocator_factory(device.index);
}

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    const std::string index = text.substr(5);
    if (!index.empty() && index.find_first_not_of("0123456789") == std::string::npos)
      return Device::cuda(std::stoi(index));
  }
  MERIDIAN_FAIL("unknown device '", text, "' (expected cpu, cuda or cuda:N)");
}

}  // namespace meridian

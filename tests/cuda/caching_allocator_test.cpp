// ops/cuda/caching_allocator.h: freed blocks are reused without new cudaMalloc calls, statistics,
// rounding, and the out-of-memory error.
#include "ops/cuda/caching_allocator.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "cuda_test_support.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using testing::thrown_message;

constexpr size_t kMiB = size_t{1} << 20;

TEST(CudaCachingAllocator, RoundsSmallTo512BytesAndLargeTo2MiB) {
  EXPECT_EQ(CudaCachingAllocator::rounded_size(0), 512u);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(1), 512u);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(512), 512u);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(513), 1024u);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(kMiB - 1), kMiB);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(kMiB), 2 * kMiB);
  EXPECT_EQ(CudaCachingAllocator::rounded_size(2 * kMiB + 1), 4 * kMiB);
}

TEST(CudaCachingAllocator, WithoutDriverTheConstructorSaysWhy) {
  if (device_count() > 0) GTEST_SKIP() << "a GPU is visible: covered by OutOfRangeDevice";
  const std::string message = thrown_message([] { CudaCachingAllocator allocator(0); });
  EXPECT_NE(message.find("cuda:0"), std::string::npos) << message;
  EXPECT_NE(message.find("no usable CUDA driver or GPU"), std::string::npos) << message;
}

TEST(CudaCachingAllocator, OutOfRangeDevice) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  const int count = device_count();
  const std::string message = thrown_message([count] { cuda_caching_allocator(count); });
  EXPECT_NE(message.find("index " + std::to_string(count)), std::string::npos) << message;
  EXPECT_NE(message.find("out of range"), std::string::npos) << message;
}

TEST(CudaCachingAllocator, OneProcessWideAllocatorPerDevice) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  EXPECT_EQ(cuda_caching_allocator(0), cuda_caching_allocator(0));
}

TEST(CudaCachingAllocator, ReusesFreedBlocksWithoutNewCudaMalloc) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  CudaCachingAllocator allocator(0);
  // The shapes of a "training step": small, awkward and large sizes, two of the same size.
  const std::vector<size_t> sizes = {1, 1000, 37 * 771 * 4, 37 * 771 * 4, 3 * kMiB + 5, 512};
  std::vector<void*> blocks(sizes.size());
  size_t warm_reserved = 0;
  size_t warm_mallocs = 0;
  for (int step = 0; step < 10; ++step) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      blocks[i] = allocator.allocate(sizes[i]);
      ASSERT_NE(blocks[i], nullptr);
      MERIDIAN_CUDA_CHECK(cudaMemsetAsync(blocks[i], 0, sizes[i], compute_stream()));  // the block is usable
    }
    for (size_t i = 0; i < sizes.size(); ++i) allocator.deallocate(blocks[i], sizes[i]);
    const MemoryStats stats = allocator.stats();
    EXPECT_EQ(stats.allocated_bytes, 0u);
    if (step == 0) {
      warm_reserved = stats.reserved_bytes;
      warm_mallocs = allocator.device_allocation_count();
      EXPECT_EQ(warm_mallocs, sizes.size());
    } else {
      EXPECT_EQ(stats.reserved_bytes, warm_reserved) << "step " << step;
      EXPECT_EQ(allocator.device_allocation_count(), warm_mallocs) << "step " << step;
    }
  }
  synchronize(compute_stream());
}

TEST(CudaCachingAllocator, StatisticsFollowAllocationsAndRelease) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  CudaCachingAllocator allocator(0);
  void* small = allocator.allocate(1000);      // 1024-byte block
  void* large = allocator.allocate(3 * kMiB);  // 4 MiB block
  MemoryStats stats = allocator.stats();
  EXPECT_EQ(stats.allocated_bytes, 1024 + 4 * kMiB);
  EXPECT_EQ(stats.peak_allocated_bytes, 1024 + 4 * kMiB);
  EXPECT_EQ(stats.reserved_bytes, 1024 + 4 * kMiB);

  allocator.deallocate(large, 3 * kMiB);
  stats = allocator.stats();
  EXPECT_EQ(stats.allocated_bytes, 1024u);
  EXPECT_EQ(stats.peak_allocated_bytes, 1024 + 4 * kMiB);
  EXPECT_EQ(stats.reserved_bytes, 1024 + 4 * kMiB);  // cached, not returned to the driver

  // The same size comes back as the same block; a slightly smaller one too (within 1/8).
  void* again = allocator.allocate(3 * kMiB);
  EXPECT_EQ(again, large);
  allocator.deallocate(again, 3 * kMiB);
  void* smaller = allocator.allocate(4 * kMiB - 100);
  EXPECT_EQ(smaller, large);
  allocator.deallocate(smaller, 4 * kMiB - 100);

  allocator.reset_peak();
  EXPECT_EQ(allocator.stats().peak_allocated_bytes, 1024u);
  allocator.release_cached();
  EXPECT_EQ(allocator.stats().reserved_bytes, 1024u);
  allocator.deallocate(small, 1000);
  EXPECT_EQ(allocator.stats().allocated_bytes, 0u);
  EXPECT_THROW(allocator.deallocate(small, 1000), Error);  // already freed
}

TEST(CudaCachingAllocator, OutOfMemoryNamesDeviceAndSizes) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  CudaCachingAllocator allocator(0);
  void* held = allocator.allocate(kMiB);
  const size_t huge = size_t{1} << 50;  // 1 PiB: no GPU has it
  const std::string message = thrown_message([&] { allocator.allocate(huge); });
  EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
  EXPECT_NE(message.find("device cuda:0"), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(huge) + " bytes"), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(2 * kMiB) + " bytes allocated"), std::string::npos) << message;
  // The failure was cleared: the allocator and the device still work.
  void* after = allocator.allocate(kMiB);
  EXPECT_NE(after, nullptr);
  MERIDIAN_CUDA_CHECK(cudaMemset(after, 0, kMiB));
  allocator.deallocate(after, kMiB);
  allocator.deallocate(held, kMiB);
}

}  // namespace
}  // namespace meridian::ops::cuda

// The CUDA runtime as the rest of Meridian sees it: a device count that never throws, and a reason
// when it is zero. Kernel tests skip through MERIDIAN_REQUIRE_CUDA_DEVICE when no GPU is visible.
#include <gtest/gtest.h>

#include "cuda_test_support.h"

namespace meridian::ops::cuda {
namespace {

TEST(CudaDevice, CountAndReasonAgree) {
  const int count = device_count();
  EXPECT_GE(count, 0);
  EXPECT_EQ(count == 0, !unavailable_reason().empty()) << unavailable_reason();
}

TEST(CudaDevice, BufferRoundTrip) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(3);
  const std::vector<float> values = testing::random_floats(1000003, rng);
  testing::DeviceBuffer<float> buffer(values);
  EXPECT_EQ(buffer.download(), values);
}

}  // namespace
}  // namespace meridian::ops::cuda

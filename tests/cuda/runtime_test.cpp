// ops/cuda/runtime.h: errors that name the call, device and rank; set_device's checks; the compute
// stream; stream-ordered copies. The no-driver test runs only where no GPU is visible (CI), the rest
// only where one is.
#include "ops/cuda/runtime.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "cuda_test_support.h"

namespace meridian::ops::cuda {
namespace {

using testing::thrown_message;

// Tells the runtime this process is world rank `rank` for one test, as the launcher does.
class ScopedRank {
 public:
  explicit ScopedRank(int rank) { set_process_rank(rank); }
  ~ScopedRank() { set_process_rank(-1); }
  ScopedRank(const ScopedRank&) = delete;
  ScopedRank& operator=(const ScopedRank&) = delete;
};

TEST(CudaRuntime, SetDeviceWithoutDriverNamesDeviceAndRank) {
  if (device_count() > 0) GTEST_SKIP() << "a GPU is visible: the out-of-range test covers set_device";
  const ScopedRank rank(3);
  const std::string message = thrown_message([] { set_device(0); });
  EXPECT_NE(message.find("cuda:0"), std::string::npos) << message;
  EXPECT_NE(message.find("rank 3"), std::string::npos) << message;
  EXPECT_NE(message.find("no usable CUDA driver or GPU"), std::string::npos) << message;
}

TEST(CudaRuntime, SetDeviceOutOfRangeNamesIndexAndCount) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  const int count = device_count();
  const ScopedRank rank(5);
  for (const int index : {count, count + 7, -1}) {
    const std::string message = thrown_message([index] { set_device(index); });
    EXPECT_NE(message.find("index " + std::to_string(index)), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(count) + " device(s) visible"), std::string::npos) << message;
    EXPECT_NE(message.find("rank 5"), std::string::npos) << message;
  }
  EXPECT_THROW(compute_stream(count), Error);
  set_device(count - 1);
  EXPECT_EQ(current_device(), count - 1);
  set_device(0);
}

TEST(CudaRuntime, CheckedCallNamesCallDeviceAndRank) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  const ScopedRank rank(2);
  const std::string message = thrown_message([] { MERIDIAN_CUDA_CHECK(cudaSetDevice(-1)); });
  EXPECT_NE(message.find("cudaSetDevice(-1) failed"), std::string::npos) << message;
  EXPECT_NE(message.find("cudaErrorInvalidDevice"), std::string::npos) << message;
  EXPECT_NE(message.find("device cuda:0 on rank 2"), std::string::npos) << message;
  // The error was cleared: the next call succeeds.
  MERIDIAN_CUDA_CHECK(cudaGetLastError());
}

TEST(CudaRuntime, ComputeStreamIsOnePerDevice) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  const cudaStream_t stream = compute_stream();
  EXPECT_NE(stream, nullptr);
  EXPECT_EQ(stream, compute_stream(0));
  if (device_count() > 1) {
    EXPECT_NE(compute_stream(1), stream);
    EXPECT_EQ(current_device(), 0);  // creating device 1's stream left the current device alone
  }
}

TEST(CudaRuntime, CopiesRoundTripInStreamOrder) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(11);
  const std::vector<float> values = testing::random_floats(100003, rng);
  testing::DeviceBuffer<float> buffer(values.size());
  buffer.poison();
  const cudaStream_t stream = compute_stream();
  copy_to_device(buffer.get(), values.data(), values.size() * sizeof(float), stream);
  std::vector<float> back(values.size(), 0.0f);
  copy_to_host(back.data(), buffer.get(), back.size() * sizeof(float), stream);
  synchronize(stream);
  EXPECT_EQ(back, values);
}

TEST(CudaRuntime, DeviceGuardRestoresTheDevice) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  {
    const DeviceGuard guard(device_count() - 1);
    EXPECT_EQ(current_device(), device_count() - 1);
  }
  EXPECT_EQ(current_device(), 0);
}

}  // namespace
}  // namespace meridian::ops::cuda

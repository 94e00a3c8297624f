// ops/cuda/stream_clock.h: a mark's time is when the stream reaches it, not when the host issued it.
// The stream is held up by a host function that sleeps (queued like a kernel, it runs after the
// stream's earlier work and before its later work): the mark after it must read at least the sleep
// later than the mark before, although the host issued both at once.
#include "ops/cuda/stream_clock.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/error.h"
#include "cuda_test_support.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

constexpr int kHoldMs = 30;

void hold_the_stream(void*) { std::this_thread::sleep_for(std::chrono::milliseconds(kHoldMs)); }

int64_t host_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TEST(StreamClock, MarksReadWhenTheStreamGetsThere) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  StreamClock clock(0);
  const int64_t before_anchor = host_ns();
  const int64_t anchor = clock.anchor();
  EXPECT_GE(anchor, before_anchor);
  const size_t before = clock.mark();
  MERIDIAN_CUDA_CHECK(cudaLaunchHostFunc(compute_stream(0), hold_the_stream, nullptr));
  const size_t after = clock.mark();
  const int64_t issued = host_ns();  // the host is not held: it issued the marks and moved on
  const std::vector<int64_t> times = clock.times();
  const int64_t done = host_ns();
  ASSERT_EQ(times.size(), 2u);
  EXPECT_EQ(before, 0u);
  EXPECT_EQ(after, 1u);
  EXPECT_GE(times[before], anchor - 10'000);  // event timing resolves about 0.5 µs
  EXPECT_GE(times[after] - times[before], (kHoldMs - 1) * 1'000'000LL);
  EXPECT_GT(times[after], issued) << "the mark read the host's issue time, not the stream's";
  EXPECT_LE(times[after], done + 1'000'000);  // anchored on the host's clock: within a millisecond of it
  EXPECT_LT(issued - anchor, kHoldMs * 1'000'000LL) << "the host waited for the stream while issuing";
}

TEST(StreamClock, AnchorRestartsTheMarksAndReusesTheirEvents) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  StreamClock clock(0);
  EXPECT_THROW(clock.mark(), Error) << "a mark needs an anchor";
  for (int window = 0; window < 3; ++window) {
    const int64_t anchor = clock.anchor();
    for (size_t i = 0; i < 5; ++i) EXPECT_EQ(clock.mark(), i);
    const std::vector<int64_t> times = clock.times();
    ASSERT_EQ(times.size(), 5u);
    for (size_t i = 1; i < times.size(); ++i) EXPECT_GE(times[i], times[i - 1]) << "stream order";
    EXPECT_GE(times.front(), anchor - 10'000);
  }
}

}  // namespace
}  // namespace meridian::ops::cuda

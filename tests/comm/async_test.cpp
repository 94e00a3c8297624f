// The asynchronous contract: operations run in issue order while the caller does other work,
// handles can be waited on in any order, and each carries the numbers the watchdog reports.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "launcher/testing/mpi_test_environment.h"
#include "rank_seeded_data.h"

namespace meridian::testing {
namespace {

using comm::ReduceOp;
using comm::WorkHandle;

TEST(Async, ManyOperationsInFlightWaitedInReverseOrder) {
  const int n = world().size();
  constexpr int kBuckets = 6;
  std::vector<Tensor> buckets;
  std::vector<WorkHandle> works;
  for (int b = 0; b < kBuckets; ++b) {
    // Different sizes, like gradient buckets, the largest past the rendezvous threshold.
    buckets.push_back(make_seeded(world().rank() + b, int64_t{1} << (8 + 2 * b)));
    works.push_back(world().all_reduce(buckets.back(), ReduceOp::sum));
  }
  for (int b = kBuckets - 1; b >= 0; --b) works[static_cast<size_t>(b)]->wait();
  for (int b = 0; b < kBuckets; ++b) {
    expect_elements(
        buckets[static_cast<size_t>(b)],
        [&](int64_t i) {
          float sum = 0.0f;
          for (int rank = 0; rank < n; ++rank) sum += seeded_value(rank + b, i);
          return sum;
        },
        "bucket " + std::to_string(b));
  }
}

TEST(Async, CompletesWhileTheCallerComputes) {
  // The comm thread progresses the collective: the caller never enters MPI until wait().
  Tensor tensor = make_seeded(world().rank(), 1 << 20);
  WorkHandle work = world().all_reduce(tensor, ReduceOp::max);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  volatile double busy = 0.0;
  while (!work->is_completed() && std::chrono::steady_clock::now() < deadline)
    for (int i = 0; i < 10000; ++i) busy = busy + 1.0;
  EXPECT_TRUE(work->is_completed()) << "the all_reduce did not progress without wait()";
  work->wait();
}

TEST(Async, DroppedHandlesStillRunInOrder) {
  // A handle may be dropped; the operation still runs, before anything issued after it.
  Tensor tensor = make_seeded(world().rank(), 1001);
  world().all_reduce(tensor, ReduceOp::sum);
  world().barrier()->wait();
  const int n = world().size();
  expect_elements(
      tensor,
      [&](int64_t i) {
        float sum = 0.0f;
        for (int rank = 0; rank < n; ++rank) sum += seeded_value(rank, i);
        return sum;
      },
      "all_reduce whose handle was dropped");
}

TEST(Async, WorkCarriesNameGroupSequenceAndBytes) {
  Tensor tensor = Tensor::zeros({1024});
  WorkHandle first = world().all_reduce(tensor, ReduceOp::sum);
  WorkHandle second = world().broadcast(tensor, 0);
  first->wait();
  second->wait();
  EXPECT_EQ(first->info().op, "all_reduce");
  EXPECT_EQ(first->info().group, "world");
  EXPECT_EQ(first->info().group_size, world().size());
  EXPECT_EQ(first->info().bytes, 4096u);
  EXPECT_EQ(second->info().sequence, first->info().sequence + 1);
  EXPECT_EQ(first->info().describe(), "all_reduce #" + std::to_string(first->info().sequence) +
                                          " on group world (" + std::to_string(world().size()) +
                                          (world().size() == 1 ? " rank" : " ranks") +
                                          ", 4096 bytes)");
}

TEST(Async, SplitTakesItsPlaceInTheOrder) {
  // A split issued behind pending collectives waits for them and then builds the group.
  Tensor tensor = make_seeded(world().rank(), 1 << 16);
  WorkHandle pending = world().all_reduce(tensor, ReduceOp::sum);
  auto halves = world().split(world().rank() % 2, world().rank(), "halves");
  EXPECT_TRUE(pending->is_completed());
  pending->wait();
  ASSERT_NE(halves, nullptr);
  EXPECT_EQ(halves->name(), "halves");
  EXPECT_EQ(halves->size(), (world().size() + 1 - world().rank() % 2) / 2);
  EXPECT_EQ(halves->rank(), world().rank() / 2);
}

TEST(Async, ExcludedRankGetsNoGroup) {
  auto only_zero = world().split(world().rank() == 0 ? 0 : -1, 0, "only-zero");
  EXPECT_EQ(only_zero == nullptr, world().rank() != 0);
}

}  // namespace
}  // namespace meridian::testing

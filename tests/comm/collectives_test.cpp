// Every collective, on every test group, for empty, single, odd and large tensors, against values
// computed from the rank-seeded inputs.
#include <gtest/gtest.h>

#include <algorithm>

#include "launcher/testing/mpi_test_environment.h"
#include "rank_seeded_data.h"
#include "test_groups.h"

namespace meridian::testing {
namespace {

using comm::Communicator;
using comm::ReduceOp;

float sum_over_ranks(int size, int64_t i) {
  float sum = 0.0f;
  for (int rank = 0; rank < size; ++rank) sum += seeded_value(rank, i);
  return sum;
}

float max_over_ranks(int size, int64_t i) {
  float best = seeded_value(0, i);
  for (int rank = 1; rank < size; ++rank) best = std::max(best, seeded_value(rank, i));
  return best;
}

// Element i of an all_gather output: element i % chunk of rank i / chunk's seeded input.
float gathered_value(int64_t chunk, int64_t i) {
  return seeded_value(static_cast<int>(i / chunk), i % chunk);
}

std::string label(const Communicator& group, const char* what) {
  return std::string(what) + " on group " + group.name() + " (" + std::to_string(group.size()) +
         " ranks)";
}

class Collectives : public ::testing::TestWithParam<int64_t> {
 protected:
  int64_t count() const { return GetParam(); }
};

TEST_P(Collectives, AllReduceSumAvgMaxF32) {
  for (const auto& group : test_groups()) {
    Tensor sum = make_seeded(group->rank(), count());
    Tensor avg = make_seeded(group->rank(), count());
    Tensor max = make_seeded(group->rank(), count());
    auto sum_work = group->all_reduce(sum, ReduceOp::sum);
    auto avg_work = group->all_reduce(avg, ReduceOp::avg);
    auto max_work = group->all_reduce(max, ReduceOp::max);
    sum_work->wait();
    avg_work->wait();
    max_work->wait();
    const int n = group->size();
    expect_elements(
        sum, [&](int64_t i) { return sum_over_ranks(n, i); }, label(*group, "sum"));
    expect_elements(
        avg, [&](int64_t i) { return sum_over_ranks(n, i) / static_cast<float>(n); },
        label(*group, "avg"));
    expect_elements(
        max, [&](int64_t i) { return max_over_ranks(n, i); }, label(*group, "max"));
  }
}

TEST_P(Collectives, AllReduceBf16AndI32) {
  for (const auto& group : test_groups()) {
    Tensor half = make_seeded(group->rank(), count(), DType::bf16);
    Tensor ints = make_tensor(count(), DType::i32, [&](int64_t i) {
      return static_cast<float>(group->rank() * 1000 + i % 7);
    });
    group->all_reduce(half, ReduceOp::sum)->wait();
    group->all_reduce(ints, ReduceOp::max)->wait();
    const int n = group->size();
    expect_elements(
        half, [&](int64_t i) { return sum_over_ranks(n, i); }, label(*group, "bf16 sum"));
    expect_elements(
        ints, [&](int64_t i) { return static_cast<float>((n - 1) * 1000 + i % 7); },
        label(*group, "i32 max"));
  }
}

TEST_P(Collectives, ReduceScatterSeparateAndInPlace) {
  for (const auto& group : test_groups()) {
    const int n = group->size();
    const int r = group->rank();
    const int64_t total = count() * n;
    Tensor input = make_seeded(r, total);
    Tensor output = Tensor::zeros({count()});
    group->reduce_scatter(input, output, ReduceOp::sum)->wait();
    expect_elements(
        output, [&](int64_t i) { return sum_over_ranks(n, r * count() + i); },
        label(*group, "reduce_scatter sum"));

    // In place: the output is this rank's chunk of the input (ZeRO shards gradients this way).
    Tensor buffer = make_seeded(r, total);
    Tensor chunk = buffer.narrow(0, r * count(), count());
    group->reduce_scatter(buffer, chunk, ReduceOp::avg)->wait();
    expect_elements(
        chunk,
        [&](int64_t i) { return sum_over_ranks(n, r * count() + i) / static_cast<float>(n); },
        label(*group, "in-place reduce_scatter avg"));
  }
}

TEST_P(Collectives, AllGatherSeparateAndInPlace) {
  for (const auto& group : test_groups()) {
    const int n = group->size();
    const int r = group->rank();
    const int64_t c = count();
    Tensor input = make_seeded(r, c, DType::bf16);  // any dtype: all_gather moves bytes
    Tensor output = Tensor::zeros({c * n}, DType::bf16);
    group->all_gather(input, output)->wait();
    expect_elements(
        output, [&](int64_t i) { return gathered_value(c, i); }, label(*group, "all_gather bf16"));

    Tensor gathered = Tensor::zeros({c * n});
    Tensor mine = gathered.narrow(0, r * c, c);
    mine.copy_(make_seeded(r, c));
    group->all_gather(mine, gathered)->wait();
    expect_elements(
        gathered, [&](int64_t i) { return gathered_value(c, i); },
        label(*group, "in-place all_gather"));
  }
}

TEST_P(Collectives, BroadcastFromLastRank) {
  for (const auto& group : test_groups()) {
    const int root = group->size() - 1;
    Tensor tensor = make_seeded(group->rank(), count());
    Tensor ints = make_tensor(count(), DType::i32, [&](int64_t i) {
      return static_cast<float>(group->rank() * 10 + i % 3);
    });
    auto first = group->broadcast(tensor, root);
    auto second = group->broadcast(ints, root);
    first->wait();
    second->wait();
    expect_elements(
        tensor, [&](int64_t i) { return seeded_value(root, i); }, label(*group, "broadcast f32"));
    expect_elements(
        ints, [&](int64_t i) { return static_cast<float>(root * 10 + i % 3); },
        label(*group, "broadcast i32"));
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, Collectives, ::testing::Values(0, 1, 1001, int64_t{4} << 20),
                         [](const ::testing::TestParamInfo<int64_t>& param_info) {
                           return "elements_" + std::to_string(param_info.param);
                         });

TEST(Collectives, BarrierCompletesOnEveryGroup) {
  for (const auto& group : test_groups()) {
    auto work = group->barrier();
    work->wait();
    EXPECT_TRUE(work->is_completed());
    EXPECT_EQ(work->info().op, "barrier");
  }
}

TEST(Collectives, GroupOfOneCompletesAtOnce) {
  // Every rank splits itself off: a group of one needs no peer, so its work is done on return.
  auto alone = world().split(runtime().world_rank(), 0, "alone");
  ASSERT_EQ(alone->size(), 1);
  Tensor tensor = make_seeded(7, 11);
  Tensor gathered = Tensor::zeros({11});
  auto reduce = alone->all_reduce(tensor, ReduceOp::avg);
  auto gather = alone->all_gather(tensor, gathered);
  EXPECT_TRUE(reduce->is_completed());
  EXPECT_TRUE(gather->is_completed());
  expect_elements(
      tensor, [](int64_t i) { return seeded_value(7, i); }, "size-1 avg");
  expect_elements(
      gathered, [](int64_t i) { return seeded_value(7, i); }, "size-1 all_gather");
}

}  // namespace
}  // namespace meridian::testing

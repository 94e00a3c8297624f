#include "ops/cpu/embedding.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "ops/kernel_test_support.h"
#include "reference/finite_difference.h"
#include "reference/reference_ops.h"

namespace meridian::ops::cpu {
namespace {

using testing::expect_close;
using testing::kFloat32Tolerance;
using testing::plus;
using testing::poisoned;
using testing::random_floats;
using testing::to_double;

// Ids with repeats (the case a row-parallel scatter gets wrong) and rows never looked up.
std::vector<int32_t> random_ids(size_t n, int32_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> distribution(0, rows - 1);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = distribution(rng);
  return ids;
}

TEST(EmbeddingForward, GathersRows) {
  const int64_t N = 9, C = 13, rows = 6;
  std::mt19937 rng(41);
  const std::vector<float> table = random_floats(static_cast<size_t>(rows * C), rng);
  const std::vector<int32_t> ids = {3, 0, 5, 3, 3, 1, 0, 2, 5};
  std::vector<float> out = poisoned(static_cast<size_t>(N * C));
  embedding_forward(out.data(), ids.data(), table.data(), N, C);
  expect_close(out, reference::embedding(ids, to_double(table), N, C), kFloat32Tolerance, "embedding");
}

TEST(EmbeddingBackward, AccumulatesFiniteDifferenceGradientWithRepeatedIds) {
  const int64_t N = 9, C = 13, rows = 6;
  std::mt19937 rng(42);
  const std::vector<float> table = random_floats(static_cast<size_t>(rows * C), rng);
  const std::vector<int32_t> ids = {3, 0, 5, 3, 3, 1, 0, 2, 5};  // row 4 unused
  const std::vector<float> dout = random_floats(static_cast<size_t>(N * C), rng);
  const std::vector<double> dout_d = to_double(dout);
  const auto expected = reference::finite_difference_gradient(
      [&](const std::vector<double>& t) {
        return reference::weighted_sum(reference::embedding(ids, t, N, C), dout_d);
      },
      to_double(table));
  const std::vector<float> dtable_before = random_floats(table.size(), rng);
  std::vector<float> dtable = dtable_before;
  embedding_backward(dtable.data(), dout.data(), ids.data(), N, C);
  expect_close(dtable, plus(dtable_before, expected), kFloat32Tolerance, "dtable");
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_EQ(dtable[static_cast<size_t>(4 * C + c)], dtable_before[static_cast<size_t>(4 * C + c)])
        << "unused row changed";
  }
}

TEST(Embedding, BackwardIsIdenticalForAnyThreadCount) {
  const int64_t N = 600, C = 200, rows = 40;  // N·C above kParallelElements, many repeats per row
  std::mt19937 rng(43);
  const std::vector<int32_t> ids = random_ids(static_cast<size_t>(N), rows, 44);
  const std::vector<float> dout = random_floats(static_cast<size_t>(N * C), rng);
  auto run = [&](int threads) {
    testing::ThreadCountScope scope(threads);
    std::vector<float> dtable(static_cast<size_t>(rows * C), 0.0f);
    embedding_backward(dtable.data(), dout.data(), ids.data(), N, C);
    return dtable;
  };
  const std::vector<float> one = run(1);
  EXPECT_EQ(run(2), one);
  std::vector<double> expected(one.size(), 0.0);
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t c = 0; c < C; ++c) {
      expected[static_cast<size_t>(ids[static_cast<size_t>(i)] * C + c)] +=
          dout[static_cast<size_t>(i * C + c)];
    }
  }
  expect_close(one, expected, kFloat32Tolerance, "dtable sums");
}

// A slice of a 10-row table (rows 4..7): ids below, inside and above it.
TEST(EmbeddingSliceForward, GathersRowsOfTheSliceAndZerosForOtherIds) {
  const int64_t N = 9, C = 13, first_row = 4, rows = 4;
  std::mt19937 rng(45);
  const std::vector<float> table = random_floats(static_cast<size_t>(rows * C), rng);
  const std::vector<int32_t> ids = {3, 4, 7, 8, 5, 0, 5, 9, 6};
  std::vector<float> out = poisoned(static_cast<size_t>(N * C));
  embedding_slice_forward(out.data(), ids.data(), table.data(), first_row, rows, N, C);
  expect_close(out, reference::embedding_slice(ids, to_double(table), first_row, rows, N, C), kFloat32Tolerance,
               "embedding slice");
}

TEST(EmbeddingSliceBackward, AccumulatesFiniteDifferenceGradientOfIdsInTheSliceOnly) {
  const int64_t N = 9, C = 13, first_row = 4, rows = 4;
  std::mt19937 rng(46);
  const std::vector<float> table = random_floats(static_cast<size_t>(rows * C), rng);
  const std::vector<int32_t> ids = {3, 4, 7, 8, 5, 0, 5, 9, 4};  // row 6 (local 2) unused
  const std::vector<float> dout = random_floats(static_cast<size_t>(N * C), rng);
  const std::vector<double> dout_d = to_double(dout);
  const auto expected = reference::finite_difference_gradient(
      [&](const std::vector<double>& t) {
        return reference::weighted_sum(reference::embedding_slice(ids, t, first_row, rows, N, C), dout_d);
      },
      to_double(table));
  const std::vector<float> dtable_before = random_floats(table.size(), rng);
  std::vector<float> dtable = dtable_before;
  embedding_slice_backward(dtable.data(), dout.data(), ids.data(), first_row, rows, N, C);
  expect_close(dtable, plus(dtable_before, expected), kFloat32Tolerance, "dtable slice");
  for (int64_t c = 0; c < C; ++c)
    EXPECT_EQ(dtable[static_cast<size_t>(2 * C + c)], dtable_before[static_cast<size_t>(2 * C + c)]) << "unused row";
}

}  // namespace
}  // namespace meridian::ops::cpu

#include "ops/cpu/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/kernel_test_support.h"
#include "reference/finite_difference.h"
#include "reference/reference_ops.h"

namespace meridian::ops::cpu {
namespace {

using testing::expect_close;
using testing::kFloat32Tolerance;
using testing::poisoned;
using testing::random_floats;
using testing::to_double;

constexpr int64_t kRows = 7;
constexpr int64_t kVocab = 11;
constexpr int64_t kPaddedVocab = 16;
constexpr float kPaddingSentinel = 1e30f;  // would dominate any softmax that read it

// Rows 2 and 5 are ignored (negative targets); padded columns hold a huge sentinel.
struct CrossEntropyCase {
  std::vector<float> logits;
  std::vector<int32_t> targets = {3, 0, -1, 10, 7, -100, 4};
};

CrossEntropyCase make_case(uint32_t seed, float spread = 3.0f) {
  std::mt19937 rng(seed);
  CrossEntropyCase x;
  x.logits = random_floats(static_cast<size_t>(kRows * kPaddedVocab), rng, -spread, spread);
  for (int64_t i = 0; i < kRows; ++i) {
    for (int64_t j = kVocab; j < kPaddedVocab; ++j)
      x.logits[static_cast<size_t>(i * kPaddedVocab + j)] = kPaddingSentinel;
  }
  return x;
}

struct Forward {
  std::vector<float> losses, lse;
};

Forward forward(const CrossEntropyCase& x) {
  Forward result{poisoned(kRows), poisoned(kRows)};
  cross_entropy_forward(result.losses.data(), result.lse.data(), x.logits.data(), x.targets.data(), kRows,
                        kVocab, kPaddedVocab);
  return result;
}

TEST(CrossEntropyForward, MatchesReferenceIgnoringPaddedColumnsAndRows) {
  const CrossEntropyCase x = make_case(51);
  const Forward result = forward(x);
  const auto expected = reference::cross_entropy(to_double(x.logits), x.targets, kRows, kVocab, kPaddedVocab);
  expect_close(result.losses, expected.losses, kFloat32Tolerance, "losses");
  expect_close(result.lse, expected.lse, kFloat32Tolerance, "lse");
  EXPECT_EQ(result.losses[2], 0.0f);
  EXPECT_EQ(result.losses[5], 0.0f);
}

TEST(CrossEntropyForward, IsStableForLargeLogits) {
  CrossEntropyCase x = make_case(52);
  for (int64_t i = 0; i < kRows; ++i) {
    for (int64_t j = 0; j < kVocab; ++j)
      x.logits[static_cast<size_t>(i * kPaddedVocab + j)] += 500.0f;  // exp overflows
  }
  const Forward result = forward(x);
  const auto expected = reference::cross_entropy(to_double(x.logits), x.targets, kRows, kVocab, kPaddedVocab);
  // The loss is lse − logit, two values near 500 whose float32 spacing is 2⁻¹⁵ ≈ 3.1e-5: the
  // difference cannot be better than about one such step, so allow two.
  const testing::Tolerance two_steps_at_500{2 * 3.1e-5, kFloat32Tolerance.rtol};
  expect_close(result.losses, expected.losses, two_steps_at_500, "losses with offset 500");
  expect_close(result.lse, expected.lse, kFloat32Tolerance, "lse with offset 500");
}

TEST(CrossEntropyBackward, AccumulatesFiniteDifferenceGradientAndLeavesPaddingAndIgnoredRows) {
  const CrossEntropyCase x = make_case(53);
  const Forward saved = forward(x);
  std::mt19937 rng(54);
  const std::vector<float> dlosses = random_floats(kRows, rng);
  const std::vector<double> dlosses_d = to_double(dlosses);
  // Differentiate only the real columns (padding is not an input of the loss).
  std::vector<int64_t> real_columns;
  for (int64_t i = 0; i < kRows; ++i) {
    for (int64_t j = 0; j < kVocab; ++j) real_columns.push_back(i * kPaddedVocab + j);
  }
  const auto expected = reference::finite_difference_gradient_at(
      [&](const std::vector<double>& logits) {
        return reference::weighted_sum(
            reference::cross_entropy(logits, x.targets, kRows, kVocab, kPaddedVocab).losses, dlosses_d);
      },
      to_double(x.logits), real_columns);

  const std::vector<float> dlogits_before = random_floats(x.logits.size(), rng);
  std::vector<float> dlogits = dlogits_before;
  cross_entropy_backward(dlogits.data(), dlosses.data(), x.logits.data(), saved.lse.data(), x.targets.data(),
                         kRows, kVocab, kPaddedVocab);
  std::vector<float> real_actual;
  std::vector<double> real_expected;
  for (size_t n = 0; n < real_columns.size(); ++n) {
    const auto index = static_cast<size_t>(real_columns[n]);
    real_actual.push_back(dlogits[index]);
    real_expected.push_back(static_cast<double>(dlogits_before[index]) + expected[n]);
  }
  expect_close(real_actual, real_expected, kFloat32Tolerance, "dlogits (real columns)");
  for (int64_t i = 0; i < kRows; ++i) {
    const bool ignored = x.targets[static_cast<size_t>(i)] < 0;
    for (int64_t j = 0; j < kPaddedVocab; ++j) {
      const auto index = static_cast<size_t>(i * kPaddedVocab + j);
      if (j >= kVocab || ignored) {
        EXPECT_EQ(dlogits[index], dlogits_before[index]) << "row " << i << " column " << j << " was written";
      }
    }
  }
}

TEST(CrossEntropy, MultithreadedMatchesSingleThread) {
  const int64_t N = 64, V = 1000, Vp = 1024;  // N·V above kParallelElements
  std::mt19937 rng(55);
  const std::vector<float> logits = random_floats(static_cast<size_t>(N * Vp), rng, -4.0f, 4.0f);
  std::vector<int32_t> targets(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) targets[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37) % V);
  const std::vector<float> dlosses = random_floats(static_cast<size_t>(N), rng);
  auto run = [&](int threads) {
    testing::ThreadCountScope scope(threads);
    std::vector<float> losses = poisoned(static_cast<size_t>(N)), lse = poisoned(static_cast<size_t>(N));
    std::vector<float> dlogits(logits.size(), 0.0f);
    cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), N, V, Vp);
    cross_entropy_backward(dlogits.data(), dlosses.data(), logits.data(), lse.data(), targets.data(), N, V,
                           Vp);
    return std::vector<std::vector<float>>{losses, lse, dlogits};
  };
  const auto one = run(1);
  const auto two = run(2);
  const auto expected = reference::cross_entropy(to_double(logits), targets, N, V, Vp);
  expect_close(two[0], expected.losses, kFloat32Tolerance, "losses (2 threads)");
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(two[i], one[i]) << "output " << i;
}

TEST(CrossEntropy, RejectsTargetsOutsideTheVocabulary) {
  CrossEntropyCase x = make_case(56);
  x.targets[1] = kVocab;  // a padded column, not a class
  std::vector<float> losses(kRows), lse(kRows);
  EXPECT_THROW(cross_entropy_forward(losses.data(), lse.data(), x.logits.data(), x.targets.data(), kRows,
                                     kVocab, kPaddedVocab),
               std::invalid_argument);
}

}  // namespace
}  // namespace meridian::ops::cpu

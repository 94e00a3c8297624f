// The vocabulary-slice pieces of a split cross-entropy, each against the double reference, and the
// pieces of every slice of a split combined against the whole-vocabulary reference cross-entropy.
#include "ops/cpu/vocab_slice_cross_entropy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
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
constexpr int64_t kVocab = 29;   // real columns of the whole vocabulary
constexpr int64_t kSlices = 4;   // 4 slices of 10 columns: 10, 10, 9 real, and one of padding only
constexpr int64_t kSliceWidth = 10;
constexpr float kPaddingSentinel = 1e30f;  // would dominate any softmax that read it

struct Slice {
  int64_t first;
  int64_t real;  // Vs
  std::vector<float> logits;  // kRows × kSliceWidth
};

struct SplitCase {
  std::vector<float> whole;  // kRows × (kSlices · kSliceWidth), padding columns hold the sentinel
  std::vector<int32_t> targets = {3, 12, -1, 28, 20, -100, 9};  // every real slice holds a target
  std::vector<Slice> slices;
};

SplitCase make_case(uint32_t seed) {
  const int64_t padded = kSlices * kSliceWidth;
  std::mt19937 rng(seed);
  SplitCase x;
  x.whole = random_floats(static_cast<size_t>(kRows * padded), rng, -3.0f, 3.0f);
  for (int64_t i = 0; i < kRows; ++i)
    for (int64_t j = kVocab; j < padded; ++j) x.whole[static_cast<size_t>(i * padded + j)] = kPaddingSentinel;
  for (int64_t s = 0; s < kSlices; ++s) {
    Slice slice{s * kSliceWidth, std::clamp<int64_t>(kVocab - s * kSliceWidth, 0, kSliceWidth), {}};
    for (int64_t i = 0; i < kRows; ++i)
      for (int64_t j = 0; j < kSliceWidth; ++j) slice.logits.push_back(x.whole[static_cast<size_t>(i * padded + slice.first + j)]);
    x.slices.push_back(slice);
  }
  return x;
}

TEST(VocabSliceCrossEntropy, PiecesMatchTheReferenceIncludingAnEmptySlice) {
  const SplitCase x = make_case(61);
  std::mt19937 rng(62);
  const std::vector<float> shifts = random_floats(kRows, rng, 2.0f, 3.0f);
  for (const Slice& slice : x.slices) {
    const auto want = reference::vocab_slice_pieces(to_double(slice.logits), x.targets, to_double(shifts),
                                                    slice.first, kRows, slice.real, kSliceWidth);
    std::vector<float> row_max = poisoned(kRows), sum_exp = poisoned(kRows), target = poisoned(kRows);
    vocab_slice_row_max(row_max.data(), slice.logits.data(), kRows, slice.real, kSliceWidth);
    vocab_slice_sum_exp(sum_exp.data(), slice.logits.data(), shifts.data(), kRows, slice.real, kSliceWidth);
    vocab_slice_target_logit(target.data(), slice.logits.data(), x.targets.data(), slice.first, kRows, slice.real,
                             kSliceWidth);
    if (slice.real == 0) {
      for (float m : row_max) EXPECT_EQ(m, -std::numeric_limits<float>::infinity());
    } else {
      expect_close(row_max, want.row_max, kFloat32Tolerance, "row_max");
    }
    expect_close(sum_exp, want.sum_exp, kFloat32Tolerance, "sum_exp");
    expect_close(target, want.target_logit, kFloat32Tolerance, "target_logit");
  }
}

// The slices combined as a tensor-parallel group combines them.
struct Combined {
  std::vector<float> losses, lse;
};

Combined combine(const SplitCase& x) {
  std::vector<float> row_max(kRows, -std::numeric_limits<float>::infinity()), sum_exp(kRows, 0.0f),
      target(kRows, 0.0f), piece(kRows);
  for (const Slice& s : x.slices) {
    vocab_slice_row_max(piece.data(), s.logits.data(), kRows, s.real, kSliceWidth);
    for (int64_t i = 0; i < kRows; ++i) row_max[static_cast<size_t>(i)] = std::max(row_max[static_cast<size_t>(i)], piece[static_cast<size_t>(i)]);
  }
  for (const Slice& s : x.slices) {
    vocab_slice_sum_exp(piece.data(), s.logits.data(), row_max.data(), kRows, s.real, kSliceWidth);
    for (int64_t i = 0; i < kRows; ++i) sum_exp[static_cast<size_t>(i)] += piece[static_cast<size_t>(i)];
    vocab_slice_target_logit(piece.data(), s.logits.data(), x.targets.data(), s.first, kRows, s.real, kSliceWidth);
    for (int64_t i = 0; i < kRows; ++i) target[static_cast<size_t>(i)] += piece[static_cast<size_t>(i)];
  }
  Combined out{std::vector<float>(kRows), std::vector<float>(kRows)};
  for (size_t i = 0; i < static_cast<size_t>(kRows); ++i) {
    out.lse[i] = row_max[i] + std::log(sum_exp[i]);
    out.losses[i] = x.targets[i] < 0 ? 0.0f : out.lse[i] - target[i];
  }
  return out;
}

TEST(VocabSliceCrossEntropy, CombinedSlicesEqualTheWholeVocabularyCrossEntropy) {
  const SplitCase x = make_case(63);
  const Combined got = combine(x);
  const auto want = reference::cross_entropy(to_double(x.whole), x.targets, kRows, kVocab, kSlices * kSliceWidth);
  expect_close(got.losses, want.losses, kFloat32Tolerance, "losses");
  expect_close(got.lse, want.lse, kFloat32Tolerance, "lse");
}

TEST(VocabSliceCrossEntropy, BackwardOfEachSliceIsItsColumnsOfTheFiniteDifferenceGradient) {
  const SplitCase x = make_case(64);
  const Combined saved = combine(x);
  const int64_t padded = kSlices * kSliceWidth;
  std::mt19937 rng(65);
  const std::vector<float> dlosses = random_floats(kRows, rng);
  const std::vector<double> dlosses_d = to_double(dlosses);
  std::vector<int64_t> real_columns;
  for (int64_t i = 0; i < kRows; ++i)
    for (int64_t j = 0; j < kVocab; ++j) real_columns.push_back(i * padded + j);
  const auto gradient = reference::finite_difference_gradient_at(
      [&](const std::vector<double>& logits) {
        return reference::weighted_sum(reference::cross_entropy(logits, x.targets, kRows, kVocab, padded).losses,
                                       dlosses_d);
      },
      to_double(x.whole), real_columns);
  std::vector<double> expected_whole(static_cast<size_t>(kRows * padded), 0.0);
  for (size_t n = 0; n < real_columns.size(); ++n) expected_whole[static_cast<size_t>(real_columns[n])] = gradient[n];

  for (const Slice& s : x.slices) {
    const std::vector<float> before = random_floats(s.logits.size(), rng);
    std::vector<float> dlogits = before;
    vocab_slice_cross_entropy_backward(dlogits.data(), dlosses.data(), s.logits.data(), saved.lse.data(),
                                       x.targets.data(), s.first, kRows, s.real, kSliceWidth);
    std::vector<float> real_got;
    std::vector<double> real_want;
    for (int64_t i = 0; i < kRows; ++i) {
      const bool ignored = x.targets[static_cast<size_t>(i)] < 0;
      for (int64_t j = 0; j < kSliceWidth; ++j) {
        const auto local = static_cast<size_t>(i * kSliceWidth + j);
        if (j >= s.real || ignored) {
          EXPECT_EQ(dlogits[local], before[local]) << "slice at " << s.first << " row " << i << " column " << j;
          continue;
        }
        real_got.push_back(dlogits[local]);
        real_want.push_back(static_cast<double>(before[local]) +
                            expected_whole[static_cast<size_t>(i * padded + s.first + j)]);
      }
    }
    expect_close(real_got, real_want, kFloat32Tolerance, "dlogits of the slice at " + std::to_string(s.first));
  }
}

TEST(VocabSliceCrossEntropy, MultithreadedMatchesSingleThread) {
  const int64_t N = 64, Vs = 900, Vs_p = 1024;  // N·Vs above kParallelElements
  std::mt19937 rng(66);
  const std::vector<float> logits = random_floats(static_cast<size_t>(N * Vs_p), rng, -4.0f, 4.0f);
  std::vector<int32_t> targets(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) targets[static_cast<size_t>(i)] = static_cast<int32_t>(1000 + (i * 37) % 1800);
  const std::vector<float> dlosses = random_floats(static_cast<size_t>(N), rng);
  const std::vector<float> lse = random_floats(static_cast<size_t>(N), rng, 5.0f, 6.0f);
  auto run = [&](int threads) {
    testing::ThreadCountScope scope(threads);
    std::vector<float> row_max(static_cast<size_t>(N)), sum_exp(static_cast<size_t>(N)),
        dlogits(logits.size(), 0.0f);
    vocab_slice_row_max(row_max.data(), logits.data(), N, Vs, Vs_p);
    vocab_slice_sum_exp(sum_exp.data(), logits.data(), row_max.data(), N, Vs, Vs_p);
    vocab_slice_cross_entropy_backward(dlogits.data(), dlosses.data(), logits.data(), lse.data(), targets.data(),
                                       1000, N, Vs, Vs_p);
    return std::vector<std::vector<float>>{row_max, sum_exp, dlogits};
  };
  const auto one = run(1);
  const auto two = run(2);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(two[i], one[i]) << "output " << i;
}

TEST(VocabSliceCrossEntropy, RejectsMoreRealColumnsThanTheSliceHolds) {
  std::vector<float> logits(4, 0.0f), out(2);
  EXPECT_THROW(vocab_slice_row_max(out.data(), logits.data(), 2, 3, 2), std::invalid_argument);
}

}  // namespace
}  // namespace meridian::ops::cpu

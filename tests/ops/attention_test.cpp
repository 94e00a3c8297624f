#include "ops/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
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

struct AttentionShape {
  int64_t B, T, C, NH;
  std::string name() const {
    return "B=" + std::to_string(B) + " T=" + std::to_string(T) + " C=" + std::to_string(C) +
           " NH=" + std::to_string(NH);
  }
  size_t qkv_size() const { return static_cast<size_t>(B * T * 3 * C); }
  size_t out_size() const { return static_cast<size_t>(B * T * C); }
  size_t lse_size() const { return static_cast<size_t>(B * NH * T); }
};

// Short sequences with odd head counts and sizes, and sequences long enough to span several query
// blocks and key tiles of the kernel (so the running-max rescaling across tiles is exercised).
const std::vector<AttentionShape> kShapes = {
    {2, 1, 12, 3}, {1, 2, 8, 1}, {2, 5, 12, 3}, {1, 17, 8, 1}, {2, 17, 12, 3}, {1, 150, 8, 2}, {1, 290, 6, 1},
};

struct Forward {
  std::vector<float> out, lse;
};

Forward forward(const std::vector<float>& qkv, const AttentionShape& s) {
  Forward result{poisoned(s.out_size()), poisoned(s.lse_size())};
  attention_forward(result.out.data(), result.lse.data(), qkv.data(), s.B, s.T, s.C, s.NH);
  return result;
}

// q and k spread over [-2, 2] so that softmax rows are far from uniform.
std::vector<float> random_qkv(const AttentionShape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  return random_floats(s.qkv_size(), rng, -2.0f, 2.0f);
}

TEST(AttentionForward, MatchesNaiveCausalSoftmaxReference) {
  for (const AttentionShape& s : kShapes) {
    const std::vector<float> qkv = random_qkv(s, 31);
    const Forward result = forward(qkv, s);
    const auto expected = reference::causal_self_attention(to_double(qkv), s.B, s.T, s.C, s.NH);
    expect_close(result.out, expected.out, kFloat32Tolerance, "out " + s.name());
    expect_close(result.lse, expected.lse, kFloat32Tolerance, "lse " + s.name());
  }
}

TEST(AttentionForward, SingleTokenAttendsOnlyToItself) {
  const AttentionShape s{3, 1, 12, 3};
  const std::vector<float> qkv = random_qkv(s, 32);
  const Forward result = forward(qkv, s);
  // With one key the softmax is exactly 1: out is v, lse is the one scaled score.
  std::vector<double> v(s.out_size());
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t c = 0; c < s.C; ++c)
      v[static_cast<size_t>(b * s.C + c)] = qkv[static_cast<size_t>(b * 3 * s.C + 2 * s.C + c)];
  }
  expect_close(result.out, v, kFloat32Tolerance, "out at T=1");
  expect_close(result.lse, reference::causal_self_attention(to_double(qkv), s.B, s.T, s.C, s.NH).lse,
               kFloat32Tolerance, "lse at T=1");
}

TEST(AttentionForward, IsCausal) {
  const AttentionShape s{2, 150, 8, 2};  // spans query blocks and key tiles
  const std::vector<float> qkv = random_qkv(s, 33);
  const Forward base = forward(qkv, s);
  for (int64_t t : {int64_t{0}, int64_t{63}, int64_t{64}, int64_t{127}, int64_t{148}}) {
    std::vector<float> perturbed = qkv;
    for (int64_t b = 0; b < s.B; ++b) {  // change every q, k and v entry of token t + 1
      for (int64_t c = 0; c < 3 * s.C; ++c)
        perturbed[static_cast<size_t>((b * s.T + t + 1) * 3 * s.C + c)] += 0.75f;
    }
    const Forward changed = forward(perturbed, s);
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t u = 0; u < s.T; ++u) {
        const auto row = static_cast<size_t>((b * s.T + u) * s.C);
        const bool same =
            std::equal(base.out.begin() + row, base.out.begin() + row + s.C, changed.out.begin() + row);
        if (u <= t) {
          EXPECT_TRUE(same) << "output of token " << u << " changed when token " << t + 1 << " did";
        } else if (u == t + 1) {
          EXPECT_FALSE(same) << "output of token " << u << " ignored its own change";
        }
      }
    }
  }
}

TEST(AttentionBackward, AccumulatesFiniteDifferenceGradients) {
  for (const AttentionShape& s : {AttentionShape{1, 1, 4, 1}, AttentionShape{2, 5, 12, 3},
                                  AttentionShape{1, 17, 8, 1}, AttentionShape{2, 17, 6, 3}}) {
    const std::vector<float> qkv = random_qkv(s, 34);
    std::mt19937 rng(35);
    const std::vector<float> dout = random_floats(s.out_size(), rng);
    const std::vector<double> dout_d = to_double(dout);
    const auto expected = reference::finite_difference_gradient(
        [&](const std::vector<double>& x) {
          return reference::weighted_sum(reference::causal_self_attention(x, s.B, s.T, s.C, s.NH).out,
                                         dout_d);
        },
        to_double(qkv));
    const Forward saved = forward(qkv, s);
    const std::vector<float> dqkv_before = random_floats(s.qkv_size(), rng);
    std::vector<float> dqkv = dqkv_before;
    attention_backward(dqkv.data(), dout.data(), qkv.data(), saved.out.data(), saved.lse.data(), s.B, s.T,
                       s.C, s.NH);
    expect_close(dqkv, plus(dqkv_before, expected), kFloat32Tolerance, "dqkv " + s.name());
  }
}

TEST(AttentionBackward, MatchesFiniteDifferencesAcrossTiles) {
  // Long enough for several query blocks and key tiles; the reference is O(T²) per coordinate, so
  // only a random sample of coordinates (spread over q, k and v of early and late tokens) is checked.
  const AttentionShape s{1, 200, 4, 2};
  const std::vector<float> qkv = random_qkv(s, 36);
  std::mt19937 rng(37);
  const std::vector<float> dout = random_floats(s.out_size(), rng);
  const std::vector<double> dout_d = to_double(dout);
  std::vector<int64_t> indices(s.qkv_size());
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int64_t>(i);
  std::shuffle(indices.begin(), indices.end(), rng);
  indices.resize(120);
  const auto expected = reference::finite_difference_gradient_at(
      [&](const std::vector<double>& x) {
        return reference::weighted_sum(reference::causal_self_attention(x, s.B, s.T, s.C, s.NH).out, dout_d);
      },
      to_double(qkv), indices);
  const Forward saved = forward(qkv, s);
  std::vector<float> dqkv(s.qkv_size(), 0.0f);
  attention_backward(dqkv.data(), dout.data(), qkv.data(), saved.out.data(), saved.lse.data(), s.B, s.T, s.C,
                     s.NH);
  std::vector<float> sampled;
  for (int64_t index : indices) sampled.push_back(dqkv[static_cast<size_t>(index)]);
  expect_close(sampled, expected, kFloat32Tolerance, "sampled dqkv " + s.name());
}

TEST(Attention, MultithreadedMatchesSingleThread) {
  const AttentionShape s{2, 150, 32, 4};
  const std::vector<float> qkv = random_qkv(s, 38);
  std::mt19937 rng(39);
  const std::vector<float> dout = random_floats(s.out_size(), rng);
  auto run = [&](int threads) {
    testing::ThreadCountScope scope(threads);
    const Forward saved = forward(qkv, s);
    std::vector<float> dqkv(s.qkv_size(), 0.0f);
    attention_backward(dqkv.data(), dout.data(), qkv.data(), saved.out.data(), saved.lse.data(), s.B, s.T,
                       s.C, s.NH);
    return std::vector<std::vector<float>>{saved.out, saved.lse, dqkv};
  };
  const auto one = run(1);
  const auto two = run(2);
  const auto expected = reference::causal_self_attention(to_double(qkv), s.B, s.T, s.C, s.NH);
  expect_close(two[0], expected.out, kFloat32Tolerance, "out (2 threads)");
  for (size_t i = 0; i < one.size(); ++i) {
    expect_close(two[i], to_double(one[i]), kFloat32Tolerance,
                 "output " + std::to_string(i) + ", 2 vs 1 threads");
  }
}

TEST(Attention, RejectsChannelsNotDivisibleByHeads) {
  std::vector<float> buffer(3 * 10);
  EXPECT_THROW(attention_forward(buffer.data(), buffer.data(), buffer.data(), 1, 1, 10, 3),
               std::invalid_argument);
}

}  // namespace
}  // namespace meridian::ops::cpu

#include "ops/cpu/gelu.h"

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

// Random values plus the tails, where tanh saturates and a naive formula loses precision.
std::vector<float> gelu_inputs(size_t random_count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> inp = random_floats(random_count, rng, -4.0f, 4.0f);
  for (float tail : {-30.0f, -12.0f, -6.0f, -0.5f, 0.0f, 1e-4f, 0.5f, 6.0f, 12.0f, 30.0f})
    inp.push_back(tail);
  return inp;
}

TEST(GeluForward, MatchesReferenceAcrossTheRange) {
  const std::vector<float> inp = gelu_inputs(37, 21);
  std::vector<float> out = poisoned(inp.size());
  gelu_forward(out.data(), inp.data(), static_cast<int64_t>(inp.size()));
  expect_close(out, reference::gelu(to_double(inp)), kFloat32Tolerance, "gelu");
}

TEST(GeluBackward, AccumulatesFiniteDifferenceGradient) {
  const std::vector<float> inp = gelu_inputs(37, 22);
  std::mt19937 rng(23);
  const std::vector<float> dout = random_floats(inp.size(), rng);
  const std::vector<double> dout_d = to_double(dout);
  const auto expected = reference::finite_difference_gradient(
      [&](const std::vector<double>& x) { return reference::weighted_sum(reference::gelu(x), dout_d); },
      to_double(inp));
  const std::vector<float> dinp_before = random_floats(inp.size(), rng);
  std::vector<float> dinp = dinp_before;
  gelu_backward(dinp.data(), inp.data(), dout.data(), static_cast<int64_t>(inp.size()));
  expect_close(dinp, plus(dinp_before, expected), kFloat32Tolerance, "gelu dinp");
}

TEST(Gelu, MultithreadedMatchesSingleThread) {
  const std::vector<float> inp = gelu_inputs(100000, 24);  // above kParallelElements
  std::mt19937 rng(25);
  const std::vector<float> dout = random_floats(inp.size(), rng);
  const auto n = static_cast<int64_t>(inp.size());
  auto run = [&](int threads) {
    testing::ThreadCountScope scope(threads);
    std::vector<float> out = poisoned(inp.size());
    std::vector<float> dinp(inp.size(), 0.0f);
    gelu_forward(out.data(), inp.data(), n);
    gelu_backward(dinp.data(), inp.data(), dout.data(), n);
    return std::vector<std::vector<float>>{out, dinp};
  };
  const auto one = run(1);
  const auto two = run(2);
  expect_close(two[0], reference::gelu(to_double(inp)), kFloat32Tolerance, "gelu (2 threads)");
  EXPECT_EQ(two[0], one[0]);
  EXPECT_EQ(two[1], one[1]);
}

}  // namespace
}  // namespace meridian::ops::cpu

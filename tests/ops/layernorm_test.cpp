#include "ops/cpu/layernorm.h"

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

constexpr float kEps = 1e-5f;

struct LayerNormCase {
  int64_t N, C;
  std::vector<float> inp, weight, bias, dout;
};

LayerNormCase make_case(int64_t N, int64_t C, uint32_t seed) {
  std::mt19937 rng(seed);
  LayerNormCase x{N, C, {}, {}, {}, {}};
  // An offset and a spread other than 1 so mean subtraction and scaling both matter.
  x.inp = random_floats(static_cast<size_t>(N * C), rng, -1.5f, 2.5f);
  x.weight = random_floats(static_cast<size_t>(C), rng, 0.5f, 1.5f);
  x.bias = random_floats(static_cast<size_t>(C), rng);
  x.dout = random_floats(static_cast<size_t>(N * C), rng);
  return x;
}

struct Saved {
  std::vector<float> out, mean, rstd;
};

Saved forward(const LayerNormCase& x) {
  Saved saved{poisoned(x.inp.size()), poisoned(static_cast<size_t>(x.N)), poisoned(static_cast<size_t>(x.N))};
  layernorm_forward(saved.out.data(), saved.mean.data(), saved.rstd.data(), x.inp.data(), x.weight.data(),
                    x.bias.data(), x.N, x.C, kEps);
  return saved;
}

TEST(LayerNormForward, MatchesReferenceIncludingSavedStatistics) {
  for (const auto& [N, C] : {std::pair<int64_t, int64_t>{7, 13}, {1, 1}, {3, 64}}) {
    const LayerNormCase x = make_case(N, C, 11);
    const Saved saved = forward(x);
    const auto expected =
        reference::layernorm(to_double(x.inp), to_double(x.weight), to_double(x.bias), N, C, kEps);
    const std::string shape = " N=" + std::to_string(N) + " C=" + std::to_string(C);
    expect_close(saved.out, expected.out, kFloat32Tolerance, "out" + shape);
    expect_close(saved.mean, expected.mean, kFloat32Tolerance, "mean" + shape);
    expect_close(saved.rstd, expected.rstd, kFloat32Tolerance, "rstd" + shape);
  }
}

TEST(LayerNormBackward, AccumulatesFiniteDifferenceGradients) {
  const int64_t N = 7, C = 13;
  const LayerNormCase x = make_case(N, C, 12);
  const Saved saved = forward(x);
  const std::vector<double> inp = to_double(x.inp), weight = to_double(x.weight), bias = to_double(x.bias);
  const std::vector<double> dout = to_double(x.dout);
  auto loss = [&](const std::vector<double>& i, const std::vector<double>& w, const std::vector<double>& b) {
    return reference::weighted_sum(reference::layernorm(i, w, b, N, C, kEps).out, dout);
  };
  const auto dinp_expected =
      reference::finite_difference_gradient([&](const auto& v) { return loss(v, weight, bias); }, inp);
  const auto dweight_expected =
      reference::finite_difference_gradient([&](const auto& v) { return loss(inp, v, bias); }, weight);
  const auto dbias_expected =
      reference::finite_difference_gradient([&](const auto& v) { return loss(inp, weight, v); }, bias);

  std::mt19937 rng(13);
  const std::vector<float> dinp_before = random_floats(x.inp.size(), rng);
  const std::vector<float> dweight_before = random_floats(x.weight.size(), rng);
  const std::vector<float> dbias_before = random_floats(x.bias.size(), rng);
  std::vector<float> dinp = dinp_before, dweight = dweight_before, dbias = dbias_before;
  layernorm_backward(dinp.data(), dweight.data(), dbias.data(), x.dout.data(), x.inp.data(), x.weight.data(),
                     saved.mean.data(), saved.rstd.data(), N, C);
  expect_close(dinp, plus(dinp_before, dinp_expected), kFloat32Tolerance, "dinp");
  expect_close(dweight, plus(dweight_before, dweight_expected), kFloat32Tolerance, "dweight");
  expect_close(dbias, plus(dbias_before, dbias_expected), kFloat32Tolerance, "dbias");
}

TEST(LayerNormBackward, ComputesOnlyTheRequestedGradients) {
  const LayerNormCase x = make_case(7, 13, 14);
  const Saved saved = forward(x);
  auto backward = [&](bool want_inp, bool want_weight, bool want_bias) {
    std::vector<float> dinp(x.inp.size(), 0.0f), dweight(x.weight.size(), 0.0f), dbias(x.bias.size(), 0.0f);
    layernorm_backward(want_inp ? dinp.data() : nullptr, want_weight ? dweight.data() : nullptr,
                       want_bias ? dbias.data() : nullptr, x.dout.data(), x.inp.data(), x.weight.data(),
                       saved.mean.data(), saved.rstd.data(), x.N, x.C);
    return std::vector<std::vector<float>>{dinp, dweight, dbias};
  };
  const auto all = backward(true, true, true);
  EXPECT_EQ(backward(true, false, false)[0], all[0]);
  EXPECT_EQ(backward(false, true, false)[1], all[1]);
  EXPECT_EQ(backward(false, false, true)[2], all[2]);
  const auto none = backward(false, false, false);
  for (const auto& gradient : none) {
    for (float value : gradient) EXPECT_EQ(value, 0.0f);
  }
}

TEST(LayerNorm, ParameterGradientsAreIdenticalForAnyThreadCount) {
  // N·C above kParallelElements and N spanning several reduction blocks.
  const LayerNormCase x = make_case(300, 131, 15);
  auto run = [&](int threads) {
    testing::ThreadCountScope scope(threads);
    const Saved saved = forward(x);
    std::vector<float> dinp(x.inp.size(), 0.0f), dweight(x.weight.size(), 0.0f), dbias(x.bias.size(), 0.0f);
    layernorm_backward(dinp.data(), dweight.data(), dbias.data(), x.dout.data(), x.inp.data(),
                       x.weight.data(), saved.mean.data(), saved.rstd.data(), x.N, x.C);
    return std::vector<std::vector<float>>{saved.out, dinp, dweight, dbias};
  };
  const auto one = run(1);
  const auto two = run(2);
  const auto expected =
      reference::layernorm(to_double(x.inp), to_double(x.weight), to_double(x.bias), x.N, x.C, kEps);
  expect_close(two[0], expected.out, kFloat32Tolerance, "out (2 threads)");
  for (size_t i = 0; i < one.size(); ++i) EXPECT_EQ(two[i], one[i]) << "output " << i;
}

}  // namespace
}  // namespace meridian::ops::cpu

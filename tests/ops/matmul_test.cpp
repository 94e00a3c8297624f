#include "ops/cpu/matmul.h"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
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

constexpr int64_t kRows = 7;
constexpr int64_t kInChannels = 13;
constexpr int64_t kOutChannels = 5;

TEST(Sgemm, MatchesReferenceInAllTransposeCombinationsWithPaddedLeadingDimensions) {
  std::mt19937 rng(1);
  testing::ThreadCountScope two_threads(2);
  // The second shape is wide enough for sgemm to split the columns across the two threads.
  for (const auto& [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{7, 5, 13}, {33, 300, 21}}) {
    for (bool trans_a : {false, true}) {
      for (bool trans_b : {false, true}) {
        // Leading dimensions larger than the minimum; the padding of c must survive untouched.
        const int64_t lda = (trans_a ? m : k) + 3;
        const int64_t ldb = (trans_b ? k : n) + 2;
        const int64_t ldc = n + 4;
        const std::vector<float> a = random_floats(static_cast<size_t>((trans_a ? k : m) * lda), rng);
        const std::vector<float> b = random_floats(static_cast<size_t>((trans_b ? n : k) * ldb), rng);
        std::vector<float> c = random_floats(static_cast<size_t>(m * ldc), rng);
        const std::vector<double> expected = reference::gemm(trans_a, trans_b, m, n, k, 0.7, to_double(a),
                                                             lda, to_double(b), ldb, 0.3, to_double(c), ldc);
        sgemm(trans_a, trans_b, m, n, k, 0.7f, a.data(), lda, b.data(), ldb, 0.3f, c.data(), ldc);
        expect_close(c, expected, kFloat32Tolerance,
                     "sgemm m=" + std::to_string(m) + " n=" + std::to_string(n) +
                         " trans_a=" + std::to_string(trans_a) + " trans_b=" + std::to_string(trans_b));
      }
    }
  }
}

TEST(Sgemm, EmptyInnerDimensionLeavesBetaTimesC) {
  std::vector<float> a(4, 1.0f), b(4, 1.0f);
  std::vector<float> c = {1.0f, 2.0f, 3.0f, 4.0f};
  sgemm(false, false, 2, 2, 0, 1.0f, a.data(), 1, b.data(), 2, 0.5f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f}));
  std::vector<float> poisoned_c = poisoned(4);
  sgemm(false, false, 2, 2, 0, 1.0f, a.data(), 1, b.data(), 2, 0.0f, poisoned_c.data(), 2);
  EXPECT_EQ(poisoned_c, std::vector<float>(4, 0.0f));
}

TEST(Sgemm, RejectsLeadingDimensionSmallerThanRow) {
  std::vector<float> a(16), b(16), c(16);
  EXPECT_THROW(sgemm(false, false, 2, 2, 4, 1.0f, a.data(), 3, b.data(), 2, 0.0f, c.data(), 2),
               std::invalid_argument);
}

TEST(MatmulForward, MatchesReferenceWithAndWithoutBias) {
  std::mt19937 rng(2);
  const std::vector<float> inp = random_floats(kRows * kInChannels, rng);
  const std::vector<float> weight = random_floats(kOutChannels * kInChannels, rng);
  const std::vector<float> bias = random_floats(kOutChannels, rng);

  std::vector<float> out = poisoned(kRows * kOutChannels);
  matmul_forward(out.data(), inp.data(), weight.data(), bias.data(), kRows, kInChannels, kOutChannels);
  expect_close(
      out,
      reference::linear(to_double(inp), to_double(weight), to_double(bias), kRows, kInChannels, kOutChannels),
      kFloat32Tolerance, "matmul_forward with bias");

  std::vector<float> out_without_bias = poisoned(kRows * kOutChannels);
  matmul_forward(out_without_bias.data(), inp.data(), weight.data(), nullptr, kRows, kInChannels,
                 kOutChannels);
  expect_close(out_without_bias,
               reference::linear(to_double(inp), to_double(weight), {}, kRows, kInChannels, kOutChannels),
               kFloat32Tolerance, "matmul_forward without bias");
}

struct LinearCase {
  std::vector<float> inp, weight, bias, dout;
  std::vector<double> inp_d, weight_d, bias_d, dout_d;
};

LinearCase make_linear_case(std::mt19937& rng, int64_t N, int64_t C, int64_t OC) {
  LinearCase example;
  example.inp = random_floats(static_cast<size_t>(N * C), rng);
  example.weight = random_floats(static_cast<size_t>(OC * C), rng);
  example.bias = random_floats(static_cast<size_t>(OC), rng);
  example.dout = random_floats(static_cast<size_t>(N * OC), rng);
  example.inp_d = to_double(example.inp);
  example.weight_d = to_double(example.weight);
  example.bias_d = to_double(example.bias);
  example.dout_d = to_double(example.dout);
  return example;
}

TEST(MatmulBackward, AccumulatesFiniteDifferenceGradients) {
  std::mt19937 rng(3);
  const LinearCase x = make_linear_case(rng, kRows, kInChannels, kOutChannels);
  // loss = Σ dout ⊙ linear(inp, weight, bias), so the upstream gradient is dout.
  auto loss = [&](const std::vector<double>& inp, const std::vector<double>& weight,
                  const std::vector<double>& bias) {
    return reference::weighted_sum(reference::linear(inp, weight, bias, kRows, kInChannels, kOutChannels),
                                   x.dout_d);
  };
  const auto dinp_expected = reference::finite_difference_gradient(
      [&](const std::vector<double>& v) { return loss(v, x.weight_d, x.bias_d); }, x.inp_d);
  const auto dweight_expected = reference::finite_difference_gradient(
      [&](const std::vector<double>& v) { return loss(x.inp_d, v, x.bias_d); }, x.weight_d);
  const auto dbias_expected = reference::finite_difference_gradient(
      [&](const std::vector<double>& v) { return loss(x.inp_d, x.weight_d, v); }, x.bias_d);

  // Pre-filled gradients: the kernel must add to them, not overwrite them.
  const std::vector<float> dinp_before = random_floats(x.inp.size(), rng);
  const std::vector<float> dweight_before = random_floats(x.weight.size(), rng);
  const std::vector<float> dbias_before = random_floats(x.bias.size(), rng);
  std::vector<float> dinp = dinp_before, dweight = dweight_before, dbias = dbias_before;
  matmul_backward(dinp.data(), dweight.data(), dbias.data(), x.dout.data(), x.inp.data(), x.weight.data(),
                  kRows, kInChannels, kOutChannels);
  expect_close(dinp, plus(dinp_before, dinp_expected), kFloat32Tolerance, "dinp");
  expect_close(dweight, plus(dweight_before, dweight_expected), kFloat32Tolerance, "dweight");
  expect_close(dbias, plus(dbias_before, dbias_expected), kFloat32Tolerance, "dbias");
}

TEST(MatmulBackward, ComputesOnlyTheRequestedGradients) {
  std::mt19937 rng(4);
  const LinearCase x = make_linear_case(rng, kRows, kInChannels, kOutChannels);
  std::vector<float> all_dinp(x.inp.size(), 0.0f), all_dweight(x.weight.size(), 0.0f),
      all_dbias(x.bias.size(), 0.0f);
  matmul_backward(all_dinp.data(), all_dweight.data(), all_dbias.data(), x.dout.data(), x.inp.data(),
                  x.weight.data(), kRows, kInChannels, kOutChannels);

  std::vector<float> dinp(x.inp.size(), 0.0f);
  matmul_backward(dinp.data(), nullptr, nullptr, x.dout.data(), x.inp.data(), x.weight.data(), kRows,
                  kInChannels, kOutChannels);
  EXPECT_EQ(dinp, all_dinp);
  std::vector<float> dweight(x.weight.size(), 0.0f);
  matmul_backward(nullptr, dweight.data(), nullptr, x.dout.data(), x.inp.data(), x.weight.data(), kRows,
                  kInChannels, kOutChannels);
  EXPECT_EQ(dweight, all_dweight);
  std::vector<float> dbias(x.bias.size(), 0.0f);
  matmul_backward(nullptr, nullptr, dbias.data(), x.dout.data(), x.inp.data(), x.weight.data(), kRows,
                  kInChannels, kOutChannels);
  EXPECT_EQ(dbias, all_dbias);
  matmul_backward(nullptr, nullptr, nullptr, x.dout.data(), x.inp.data(), x.weight.data(), kRows, kInChannels,
                  kOutChannels);  // nothing requested: must not touch memory
}

TEST(Matmul, MultithreadedMatchesSingleThreadAndReference) {
  // Wide enough that every product is split into column panels and the column sums run in parallel.
  const int64_t N = 96, C = 300, OC = 520;
  std::mt19937 rng(5);
  const LinearCase x = make_linear_case(rng, N, C, OC);
  auto run = [&](int threads) {
    testing::ThreadCountScope scope(threads);
    std::vector<float> out = poisoned(static_cast<size_t>(N * OC));
    std::vector<float> dinp(x.inp.size(), 0.0f), dweight(x.weight.size(), 0.0f), dbias(x.bias.size(), 0.0f);
    matmul_forward(out.data(), x.inp.data(), x.weight.data(), x.bias.data(), N, C, OC);
    matmul_backward(dinp.data(), dweight.data(), dbias.data(), x.dout.data(), x.inp.data(), x.weight.data(),
                    N, C, OC);
    return std::vector<std::vector<float>>{out, dinp, dweight, dbias};
  };
  const auto one = run(1);
  const auto two = run(2);
  const std::vector<double> out_expected = reference::linear(x.inp_d, x.weight_d, x.bias_d, N, C, OC);
  expect_close(one[0], out_expected, kFloat32Tolerance, "out (1 thread)");
  expect_close(two[0], out_expected, kFloat32Tolerance, "out (2 threads)");
  for (size_t i = 1; i < one.size(); ++i) {
    expect_close(two[i], to_double(one[i]), kFloat32Tolerance,
                 "gradient " + std::to_string(i) + ", 2 vs 1 threads");
  }
  EXPECT_EQ(two[3], one[3]) << "dbias column sums must not depend on the thread count";
}

}  // namespace
}  // namespace meridian::ops::cpu

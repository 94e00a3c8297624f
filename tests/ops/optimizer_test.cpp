#include "ops/cpu/optimizer.h"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/kernel_test_support.h"
#include "reference/reference_ops.h"

namespace meridian::ops::cpu {
namespace {

using testing::expect_close;
using testing::kFloat32Tolerance;
using testing::random_floats;
using testing::to_double;

constexpr int64_t kSteps = 6;

TEST(AdamW, FollowsTorchAdamWOverSeveralSteps) {
  const size_t n = 37;
  std::mt19937 rng(61);
  std::vector<float> param = random_floats(n, rng), m(n, 0.0f), v(n, 0.0f);
  std::vector<double> param_ref = to_double(param), m_ref(n, 0.0), v_ref(n, 0.0);
  AdamWHyper hyper;
  hyper.lr = 1e-2f;
  hyper.beta1 = 0.9f;
  hyper.beta2 = 0.95f;
  hyper.eps = 1e-8f;
  hyper.weight_decay = 0.1f;
  hyper.grad_scale = 0.5f;
  // The reference gets the float hyper-parameters' exact values, so only the arithmetic differs.
  const reference::AdamWConfig config{hyper.lr,  hyper.beta1,        hyper.beta2,
                                      hyper.eps, hyper.weight_decay, hyper.grad_scale};
  for (int64_t step = 1; step <= kSteps; ++step) {
    const std::vector<float> grad = random_floats(n, rng);
    hyper.step = step;
    adamw_update(param.data(), grad.data(), m.data(), v.data(), static_cast<int64_t>(n), hyper);
    reference::adamw_step(param_ref, m_ref, v_ref, to_double(grad), config, step);
  }
  expect_close(param, param_ref, kFloat32Tolerance, "param");
  expect_close(m, m_ref, kFloat32Tolerance, "m");
  expect_close(v, v_ref, kFloat32Tolerance, "v");
}

TEST(AdamW, MultithreadedMatchesSingleThread) {
  const size_t n = 100003;  // above kParallelElements, odd tail
  std::mt19937 rng(62);
  const std::vector<float> initial = random_floats(n, rng), grad = random_floats(n, rng);
  auto run = [&](int threads) {
    testing::ThreadCountScope scope(threads);
    std::vector<float> param = initial, m(n, 0.1f), v(n, 0.2f);
    AdamWHyper hyper;
    hyper.weight_decay = 0.1f;
    hyper.step = 3;
    adamw_update(param.data(), grad.data(), m.data(), v.data(), static_cast<int64_t>(n), hyper);
    return std::vector<std::vector<float>>{param, m, v};
  };
  EXPECT_EQ(run(2), run(1));
}

struct SgdVariant {
  const char* name;
  float momentum, dampening, weight_decay;
  bool nesterov;
};

TEST(Sgd, FollowsTorchSgdOverSeveralSteps) {
  for (const SgdVariant& variant :
       {SgdVariant{"plain", 0.0f, 0.0f, 0.0f, false}, SgdVariant{"weight decay", 0.0f, 0.0f, 0.05f, false},
        SgdVariant{"momentum with dampening", 0.9f, 0.1f, 0.0f, false},
        SgdVariant{"nesterov with weight decay", 0.9f, 0.0f, 0.05f, true}}) {
    const size_t n = 29;
    std::mt19937 rng(63);
    std::vector<float> param = random_floats(n, rng);
    std::vector<float> buffer(n, 123.0f);  // garbage: the first step must overwrite it
    std::vector<double> param_ref = to_double(param), buffer_ref(n, 0.0);
    SgdHyper hyper;
    hyper.lr = 0.05f;
    hyper.momentum = variant.momentum;
    hyper.dampening = variant.dampening;
    hyper.weight_decay = variant.weight_decay;
    hyper.nesterov = variant.nesterov;
    hyper.grad_scale = 0.5f;
    const reference::SgdConfig config{hyper.lr,           hyper.momentum, hyper.dampening,
                                      hyper.weight_decay, hyper.nesterov, hyper.grad_scale};
    for (int64_t step = 1; step <= kSteps; ++step) {
      const std::vector<float> grad = random_floats(n, rng);
      hyper.first_step = step == 1;
      sgd_update(param.data(), grad.data(), variant.momentum != 0.0f ? buffer.data() : nullptr,
                 static_cast<int64_t>(n), hyper);
      reference::sgd_step(param_ref, buffer_ref, to_double(grad), config, step == 1);
    }
    expect_close(param, param_ref, kFloat32Tolerance, std::string("param, ") + variant.name);
    if (variant.momentum != 0.0f)
      expect_close(buffer, buffer_ref, kFloat32Tolerance, std::string("buffer, ") + variant.name);
  }
}

TEST(Sgd, MomentumNeedsABuffer) {
  std::vector<float> param(4, 1.0f), grad(4, 1.0f);
  SgdHyper hyper;
  hyper.momentum = 0.9f;
  EXPECT_THROW(sgd_update(param.data(), grad.data(), nullptr, 4, hyper), std::invalid_argument);
}

TEST(SumOfSquares, MatchesDoubleReferenceAndIgnoresThreadCount) {
  const size_t n = 300001;  // several reduction blocks
  std::mt19937 rng(64);
  const std::vector<float> x = random_floats(n, rng, -3.0f, 3.0f);
  const double expected = reference::sum_of_squares(to_double(x));
  double one = 0.0, two = 0.0;
  {
    testing::ThreadCountScope scope(1);
    one = sum_of_squares(x.data(), static_cast<int64_t>(n));
  }
  {
    testing::ThreadCountScope scope(2);
    two = sum_of_squares(x.data(), static_cast<int64_t>(n));
  }
  // Squares of floats are exact in double, so only the double additions round: ~n · 1e-16 relative.
  EXPECT_NEAR(one, expected, 1e-10 * expected);
  EXPECT_EQ(one, two);
  EXPECT_EQ(sum_of_squares(x.data(), 0), 0.0);
}

}  // namespace
}  // namespace meridian::ops::cpu

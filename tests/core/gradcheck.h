#pragma once
// Gradient checks of differentiable functions: the analytic backward (float32, through the autograd
// engine) against central finite differences of a float64 reference forward (tests/reference).
//
// Criterion, the same for every function: |analytic − numeric| ≤ 1e-5·max|numeric| + 1e-4·|numeric|.
// float32 kernels land near 1e-6 relative; the double-precision differences near 1e-10.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "reference/finite_difference.h"

namespace meridian::testing {

inline std::vector<double> random_values(size_t n, uint32_t seed, double low = -1.0, double high = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(low, high);
  std::vector<double> out(n);
  for (double& v : out) v = dist(rng);
  return out;
}

inline Tensor f32_tensor(const std::vector<double>& values, const Shape& shape, bool requires_grad) {
  std::vector<float> f(values.begin(), values.end());
  Tensor t = Tensor::from_vector<float>(f, shape);
  t.set_requires_grad(requires_grad);
  return t;
}

inline std::vector<double> as_double(const Tensor& t) {
  const std::vector<float> f = t.to_float_vector();
  return {f.begin(), f.end()};
}

inline void expect_close(const std::vector<double>& analytic, const std::vector<double>& numeric,
                         const std::string& what) {
  ASSERT_EQ(analytic.size(), numeric.size()) << what;
  double scale = 0.0;
  for (double v : numeric) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < numeric.size(); ++i) {
    const double tolerance = 1e-5 * scale + 1e-4 * std::abs(numeric[i]);
    ASSERT_LE(std::abs(analytic[i] - numeric[i]), tolerance)
        << what << " element " << i << ": analytic " << analytic[i] << " numeric " << numeric[i];
  }
}

// One differentiable input: its values (double), its shape, and whether to check its gradient.
struct GradInput {
  std::string name;
  std::vector<double> values;
  Shape shape;
  bool check = true;
};

// Runs `function` on float32 copies of `inputs`, backpropagates a random upstream gradient w, and
// compares each checked input's gradient with the finite differences of Σ w ⊙ reference(inputs).
// Also checks the forward against the reference.
inline void gradcheck(const std::vector<GradInput>& inputs,
                      const std::function<Tensor(const std::vector<Tensor>&)>& function,
                      const std::function<std::vector<double>(const std::vector<std::vector<double>>&)>& reference,
                      uint32_t seed = 1) {
  std::vector<Tensor> tensors;
  std::vector<std::vector<double>> values;
  for (const auto& in : inputs) {
    tensors.push_back(f32_tensor(in.values, in.shape, in.check));
    values.push_back(in.values);
  }
  Tensor out = function(tensors);
  const std::vector<double> expected = reference(values);
  expect_close(as_double(out), expected, "forward");

  const std::vector<double> upstream = random_values(static_cast<size_t>(out.numel()), seed + 1000);
  out.backward(f32_tensor(upstream, out.shape(), false));

  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].check) continue;
    ASSERT_TRUE(tensors[i].grad().defined()) << inputs[i].name << " got no gradient";
    auto loss_of = [&](const std::vector<double>& x) {
      std::vector<std::vector<double>> perturbed = values;
      perturbed[i] = x;
      return reference::weighted_sum(reference(perturbed), upstream);
    };
    expect_close(as_double(tensors[i].grad()), reference::finite_difference_gradient(loss_of, values[i]),
                 "gradient of " + inputs[i].name);
  }
}

}  // namespace meridian::testing

#pragma once
// Central finite differences in double precision, for checking analytic gradients against a scalar
// function of a flat parameter vector (usually loss = Σ w ⊙ f(x) built from reference_ops.h).
//
// With a smooth f in double, the central difference has truncation error O(step²·f''') and rounding
// error O(1e-16·|f| / step); the default step of 1e-5 keeps both near 1e-10 for the O(1) inputs and
// losses tests use, far below float32 rounding in the kernels being checked.
#include <cstdint>
#include <functional>
#include <numeric>
#include <vector>

namespace meridian::reference {

using ScalarFunction = std::function<double(const std::vector<double>&)>;

inline constexpr double kDefaultFiniteDifferenceStep = 1e-5;

// ∂f/∂x_i ≈ (f(x + step·e_i) − f(x − step·e_i)) / (2·step) for each i in indices.
// Returns the derivatives in the order of indices.
inline std::vector<double> finite_difference_gradient_at(const ScalarFunction& f, std::vector<double> x,
                                                         const std::vector<int64_t>& indices,
                                                         double step = kDefaultFiniteDifferenceStep) {
  std::vector<double> gradient;
  gradient.reserve(indices.size());
  for (int64_t index : indices) {
    double& coordinate = x.at(static_cast<size_t>(index));
    const double original = coordinate;
    coordinate = original + step;
    const double above = f(x);
    coordinate = original - step;
    const double below = f(x);
    coordinate = original;
    gradient.push_back((above - below) / (2.0 * step));
  }
  return gradient;
}

// The full gradient: every coordinate of x.
inline std::vector<double> finite_difference_gradient(const ScalarFunction& f, const std::vector<double>& x,
                                                      double step = kDefaultFiniteDifferenceStep) {
  std::vector<int64_t> all(x.size());
  std::iota(all.begin(), all.end(), int64_t{0});
  return finite_difference_gradient_at(f, x, all, step);
}

// Σ weights ⊙ values: turns a vector-valued f into the scalar loss whose gradient with respect to
// f's output is exactly weights (the upstream gradient a backward kernel receives).
inline double weighted_sum(const std::vector<double>& values, const std::vector<double>& weights) {
  return std::inner_product(values.begin(), values.end(), weights.begin(), 0.0);
}

}  // namespace meridian::reference

#pragma once
// Shared helpers for the CPU kernel tests: seeded random data, float/double conversion, poisoned
// output buffers, thread-count control, and one tolerance check used by every comparison.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ops/cpu/parallel.h"

namespace meridian::ops::cpu::testing {

// |actual − expected| ≤ atol + rtol·|expected| (llm.c's dev/cuda/common.h check).
struct Tolerance {
  double atol;
  double rtol;
};

// Every comparison of a float32 kernel with the double reference (forward outputs directly, backward
// outputs against central differences, which are good to ~1e-9, see finite_difference.h): O(1) data,
// reductions of at most a few hundred terms, each rounding by ≤ 6e-8 relative. The tests stay well
// inside this bound (largest observed error ≈ 0.15 of it); a wrong formula misses it by orders.
inline constexpr Tolerance kFloat32Tolerance{1e-5, 1e-5};

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> values(n);
  for (float& value : values) value = distribution(rng);
  return values;
}

inline std::vector<double> to_double(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

// Outputs start as NaN so that any element a forward kernel fails to write fails the comparison.
inline std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// Expects actual ≈ expected elementwise; reports the first few mismatches with their indices.
inline void expect_close(const std::vector<float>& actual, const std::vector<double>& expected,
                         Tolerance tolerance, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  std::ostringstream mismatches;
  int count = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double error = std::abs(static_cast<double>(actual[i]) - expected[i]);
    const bool close = error <= tolerance.atol + tolerance.rtol * std::abs(expected[i]);
    if (!close) {  // NaN fails here too
      if (count < 8) mismatches << "\n  [" << i << "] got " << actual[i] << ", expected " << expected[i];
      ++count;
    }
  }
  EXPECT_EQ(count, 0) << what << ": " << count << " of " << actual.size() << " elements outside atol "
                      << tolerance.atol << " + rtol " << tolerance.rtol << mismatches.str();
}

// Element-wise sum of two vectors (expected gradient = pre-filled value + true gradient).
inline std::vector<double> plus(const std::vector<float>& a, const std::vector<double>& b) {
  std::vector<double> sum(b.size());
  for (size_t i = 0; i < b.size(); ++i) sum[i] = static_cast<double>(a.at(i)) + b[i];
  return sum;
}

// Runs the enclosed scope with a given OpenMP thread count and restores the previous one.
class ThreadCountScope {
 public:
  explicit ThreadCountScope(int threads) : previous_(num_threads()) { set_num_threads(threads); }
  ~ThreadCountScope() { set_num_threads(previous_); }
  ThreadCountScope(const ThreadCountScope&) = delete;
  ThreadCountScope& operator=(const ThreadCountScope&) = delete;

 private:
  int previous_;
};

}  // namespace meridian::ops::cpu::testing

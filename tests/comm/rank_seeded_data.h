#pragma once
// Test data seeded by rank (nccl-tests InitData): each rank's value at element i is a known
// function of (rank, i), so the result of any collective is computable on every rank. Values are
// small multiples of 1/4, exact in f32 and bf16, and so are their sums over a few ranks.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>

#include "core/tensor.h"

namespace meridian::testing {

inline float seeded_value(int rank, int64_t index) {
  return static_cast<float>((rank + 1) * (index % 13) - 2 * rank + (index % 5)) * 0.25f;
}

// A contiguous tensor of `count` elements where element i is value(i).
inline Tensor make_tensor(int64_t count, DType dtype, const std::function<float(int64_t)>& value) {
  Tensor values = Tensor::empty({count}, DType::f32);
  float* data = values.data<float>();
  for (int64_t i = 0; i < count; ++i) data[i] = value(i);
  return dtype == DType::f32 ? values : values.to(dtype);
}

inline Tensor make_seeded(int rank, int64_t count, DType dtype = DType::f32) {
  return make_tensor(count, dtype, [rank](int64_t i) { return seeded_value(rank, i); });
}

// Checks every element (converted to float) against expected(i); reports the first mismatch and
// the count instead of one failure per element.
inline void expect_elements(const Tensor& tensor, const std::function<float(int64_t)>& expected,
                            const std::string& what, float tolerance = 0.0f) {
  const std::vector<float> actual = tensor.to_float_vector();
  int64_t mismatches = 0;
  int64_t first = -1;
  for (int64_t i = 0; i < static_cast<int64_t>(actual.size()); ++i) {
    const float want = expected(i);
    const float diff = actual[static_cast<size_t>(i)] - want;
    if (diff > tolerance || diff < -tolerance) {
      if (first < 0) first = i;
      ++mismatches;
    }
  }
  EXPECT_EQ(mismatches, 0) << what << ": first mismatch at element " << first << ": got "
                           << (first >= 0 ? actual[static_cast<size_t>(first)] : 0.0f)
                           << ", expected " << (first >= 0 ? expected(first) : 0.0f);
}

}  // namespace meridian::testing

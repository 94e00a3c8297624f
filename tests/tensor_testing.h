#pragma once
// Tensors for tests: uniform random f32 values of a shape, and leaves that record gradients. Shared by
// the core and CUDA test suites (both include tests/).
#include <random>
#include <vector>

#include "core/tensor.h"

namespace meridian::testing {

// Values drawn from U(low, high) with `rng`, in order, as an f32 cpu tensor of `shape`.
inline Tensor random_tensor(const Shape& shape, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (float& v : values) v = distribution(rng);
  return Tensor::from_vector(values, shape);
}

// `t` made a leaf that accumulates its gradient.
inline Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

}  // namespace meridian::testing

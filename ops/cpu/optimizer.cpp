#include "ops/cpu/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "ops/cpu/parallel.h"
#include "ops/cpu/vector_math.h"

namespace meridian::ops::cpu {

namespace {

// One AdamW update in _single_tensor_adamw's order, on a register of lanes or on one float (the
// tail of the array): one expression for both.
template <class Lanes>
inline void adamw_lanes(Lanes& param, Lanes grad, Lanes& m, Lanes& v, const AdamWScalars& s) {
  const Lanes g = grad * s.grad_scale;
  const Lanes decayed = param * s.decay;
  m = s.beta1 * m + s.one_minus_beta1 * g;
  v = s.beta2 * v + s.one_minus_beta2 * (g * g);
  const Lanes denom = sqrt_lanes(v) / s.bias_correction2_sqrt + s.eps;
  param = decayed - s.step_size * (m / denom);
}

}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& hyper) {
  const AdamWScalars scalars = adamw_scalars(hyper);
  // Explicit lanes rather than "omp simd": GCC will not vectorize std::sqrt under -fmath-errno.
  const int64_t vector_blocks = n / kFloatLanes;
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t block = 0; block < vector_blocks; ++block) {
    const int64_t i = block * kFloatLanes;
    FloatLanes param_lanes = load_lanes(param + i);
    FloatLanes m_lanes = load_lanes(m + i);
    FloatLanes v_lanes = load_lanes(v + i);
    adamw_lanes(param_lanes, load_lanes(grad + i), m_lanes, v_lanes, scalars);
    store_lanes(param + i, param_lanes);
    store_lanes(m + i, m_lanes);
    store_lanes(v + i, v_lanes);
  }
  for (int64_t i = vector_blocks * kFloatLanes; i < n; ++i)
    adamw_lanes(param[i], grad[i], m[i], v[i], scalars);
}

void sgd_update(float* param, const float* grad, float* momentum_buffer, int64_t n, const SgdHyper& hyper) {
  const bool uses_momentum = hyper.momentum != 0.0f;
  if (uses_momentum && momentum_buffer == nullptr) {
    throw std::invalid_argument("sgd_update: momentum != 0 needs a momentum buffer");
  }
  const float lr = hyper.lr;
  const float momentum = hyper.momentum;
  const auto one_minus_dampening = static_cast<float>(1.0 - static_cast<double>(hyper.dampening));
  const float weight_decay = hyper.weight_decay;
  const float grad_scale = hyper.grad_scale;
  const bool first_step = hyper.first_step;
  const bool nesterov = hyper.nesterov;

#pragma omp parallel for simd schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] * grad_scale;
    if (weight_decay != 0.0f) g += weight_decay * param[i];
    if (uses_momentum) {
      const float buffer = first_step ? g : momentum * momentum_buffer[i] + one_minus_dampening * g;
      momentum_buffer[i] = buffer;
      g = nesterov ? g + momentum * buffer : buffer;
    }
    param[i] -= lr * g;
  }
}

double sum_of_squares(const float* x, int64_t n) {
  // Fixed-size blocks summed in block order: the same bits for any thread count, which keeps the
  // clipped gradients (and so the loss curve) independent of how many threads ran the reduction.
  constexpr int64_t kBlock = 1 << 16;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partials(static_cast<size_t>(blocks));
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t begin = block * kBlock;
    const int64_t end = std::min(n, begin + kBlock);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = begin; i < end; ++i) {
      const auto value = static_cast<double>(x[i]);
      sum += value * value;
    }
    partials[static_cast<size_t>(block)] = sum;
  }
  double total = 0.0;
  for (double partial : partials) total += partial;
  return total;
}

}  // namespace meridian::ops::cpu

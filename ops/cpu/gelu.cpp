#include "ops/cpu/gelu.h"

#include "ops/cpu/parallel.h"
#include "ops/cpu/vector_math.h"

namespace meridian::ops::cpu {

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubicCoefficient = 0.044715f;

// 0.5·(1 + tanh(u)) = sigmoid(2u): the sigmoid form has no cancellation for large |x| and needs only
// one exp, which vectorizes.
inline float tanh_argument(float x) { return kSqrt2OverPi * (x + kCubicCoefficient * x * x * x); }

}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    out[i] = x * simd_sigmoid(2.0f * tanh_argument(x));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    // With s = sigmoid(2u): d/dx [x·s] = s + x · 2s(1 − s) · du/dx, and 1 − tanh²(u) = 4s(1 − s).
    const float s = simd_sigmoid(2.0f * tanh_argument(x));
    const float du_dx = kSqrt2OverPi * (1.0f + 3.0f * kCubicCoefficient * x * x);
    dinp[i] += dout[i] * (s + 2.0f * x * s * (1.0f - s) * du_dx);
  }
}

}  // namespace meridian::ops::cpu

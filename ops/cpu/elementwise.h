#pragma once
// Elementwise kernels on raw float memory. Backward kernels accumulate (+=) into their outputs.
#include <cstdint>

namespace meridian::ops::cpu {

// out = a + b (residual and bias-free adds; out may alias a or b)
void add_forward(float* out, const float* a, const float* b, int64_t n);
// da += dout, db += dout (either may be null)
void add_backward(float* da, float* db, const float* dout, int64_t n);
// dst += alpha * src
void axpy(float* dst, const float* src, float alpha, int64_t n);
// x *= alpha
void scale(float* x, float alpha, int64_t n);
// out = alpha * x (out may alias x)
void scaled_copy(float* out, const float* x, float alpha, int64_t n);
// x = value
void fill(float* x, float value, int64_t n);

}  // namespace meridian::ops::cpu

#pragma once
#include <cstdint>

namespace meridian::ops::cpu {

// GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
void gelu_forward(float* out, const float* inp, int64_t n);
// dinp += gelu'(inp) · dout
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

}  // namespace meridian::ops::cpu

#pragma once
#include <cstdint>

namespace meridian::ops::cpu {

// Over the last axis (C) of N rows: out = (inp − mean) · rstd · weight + bias, rstd = 1/sqrt(var + eps)
// with the biased variance. Saves mean and rstd (N each) for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);

// dinp += ∂/∂inp, dweight += ∂/∂weight, dbias += ∂/∂bias (each may be null).
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C);

}  // namespace meridian::ops::cpu

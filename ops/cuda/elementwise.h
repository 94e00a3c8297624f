#pragma once
// CUDA twins of ops/cpu/elementwise.h: the same arguments plus the stream. Device pointers; backward
// kernels accumulate (+=). Plain C++ can include this header.
#include <cstdint>

#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

// out = a + b (residual and bias-free adds; out may alias a or b)
void add_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream);
// da += dout, db += dout (either may be null)
void add_backward(float* da, float* db, const float* dout, int64_t n, cudaStream_t stream);
// dst += alpha * src
void axpy(float* dst, const float* src, float alpha, int64_t n, cudaStream_t stream);
// x *= alpha
void scale(float* x, float alpha, int64_t n, cudaStream_t stream);
// out = alpha * x (out may alias x)
void scaled_copy(float* out, const float* x, float alpha, int64_t n, cudaStream_t stream);
// x = value
void fill(float* x, float value, int64_t n, cudaStream_t stream);

// The residual stream in bf16: fp32 sums, one rounding per output.
void add_forward(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* b, int64_t n, cudaStream_t stream);
void add_backward(__nv_bfloat16* da, __nv_bfloat16* db, const __nv_bfloat16* dout, int64_t n, cudaStream_t stream);

}  // namespace meridian::ops::cuda

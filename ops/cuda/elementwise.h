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
// dst += alpha * src in fp32, one rounding per element where dst is bf16. The mixed forms move
// gradients between bf16 activations or weight copies and fp32 master weights.
void axpy(__nv_bfloat16* dst, const __nv_bfloat16* src, float alpha, int64_t n, cudaStream_t stream);
void axpy(float* dst, const __nv_bfloat16* src, float alpha, int64_t n, cudaStream_t stream);
void axpy(__nv_bfloat16* dst, const float* src, float alpha, int64_t n, cudaStream_t stream);
void scaled_copy(__nv_bfloat16* out, const __nv_bfloat16* x, float alpha, int64_t n, cudaStream_t stream);

// Element type conversion: fp32 → bf16 rounds to nearest even (as the cpu's bf16), bf16 → fp32 is exact.
void convert(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream);
void convert(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream);

}  // namespace meridian::ops::cuda

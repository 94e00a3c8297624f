#pragma once
// CUDA twins of ops/cpu/gelu.h: the same arguments plus the stream. Device pointers; plain C++ can
// include this header.
#include <cstdint>

#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

// GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
void gelu_forward(float* out, const float* inp, int64_t n, cudaStream_t stream);
// dinp += gelu'(inp) · dout (dinp = … with overwrite: dinp is not read).
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, cudaStream_t stream,
                   bool overwrite = false);

// bf16 storage, fp32 arithmetic, one rounding per output (dinp: read, add in fp32, round once).
void gelu_forward(__nv_bfloat16* out, const __nv_bfloat16* inp, int64_t n, cudaStream_t stream);
void gelu_backward(__nv_bfloat16* dinp, const __nv_bfloat16* inp, const __nv_bfloat16* dout, int64_t n,
                   cudaStream_t stream, bool overwrite = false);

}  // namespace meridian::ops::cuda

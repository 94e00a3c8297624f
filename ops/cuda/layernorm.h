#pragma once
// CUDA twins of ops/cpu/layernorm.h: the same arguments plus the stream the kernels run on.
// All pointers are device memory. Plain C++ can include this header (no CUDA headers needed).
#include <cstddef>
#include <cstdint>

#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

// Over the last axis (C) of N rows: out = (inp − mean) · rstd · weight + bias, rstd = 1/sqrt(var + eps)
// with the biased, centred variance. Saves mean and rstd (N floats each) for backward; either may be
// null when backward will not run.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps, cudaStream_t stream);
// bf16 activations and parameters, fp32 statistics and arithmetic (one rounding per output).
void layernorm_forward(__nv_bfloat16* out, float* mean, float* rstd, const __nv_bfloat16* inp,
                       const __nv_bfloat16* weight, const __nv_bfloat16* bias, int64_t N, int64_t C, float eps,
                       cudaStream_t stream);

// dinp += ∂/∂inp, dweight += ∂/∂weight, dbias += ∂/∂bias (each may be null). Deterministic: the
// parameter gradients are summed over rows in a fixed order (no atomics). With overwrite_dinp,
// dinp = ∂/∂inp (not read: it may start uninitialised).
//
// Parameter gradients: with `scratch` (layernorm_backward_scratch_bytes(N, C) bytes of device
// memory), the rows are split into chunks of kLayerNormRowsPerSplit, each (chunk, 32 channels) block
// writes partial sums, and a second pass adds them in chunk order: enough blocks to fill a GPU
// (GPT-2: 24 channel blocks × N/512 chunks). Without it, one block per 32 channels walks every row
// (24 blocks at C = 768: correct and deterministic, but a fraction of the machine).
inline constexpr int64_t kLayerNormRowsPerSplit = 512;
size_t layernorm_backward_scratch_bytes(int64_t N, int64_t C);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        cudaStream_t stream, bool overwrite_dinp = false, void* scratch = nullptr);
// bf16 tensors and gradients, fp32 statistics and arithmetic: each gradient element is read, gains
// its fp32 sum, and is rounded once.
void layernorm_backward(__nv_bfloat16* dinp, __nv_bfloat16* dweight, __nv_bfloat16* dbias, const __nv_bfloat16* dout,
                        const __nv_bfloat16* inp, const __nv_bfloat16* weight, const float* mean, const float* rstd,
                        int64_t N, int64_t C, cudaStream_t stream, bool overwrite_dinp = false,
                        void* scratch = nullptr);
// bf16 tensors with fp32 parameter gradients (fp32 master weights under mixed precision): the fp32
// sums over rows are added to dweight and dbias without a bf16 rounding in between.
void layernorm_backward(__nv_bfloat16* dinp, float* dweight, float* dbias, const __nv_bfloat16* dout,
                        const __nv_bfloat16* inp, const __nv_bfloat16* weight, const float* mean, const float* rstd,
                        int64_t N, int64_t C, cudaStream_t stream, bool overwrite_dinp = false,
                        void* scratch = nullptr);

}  // namespace meridian::ops::cuda

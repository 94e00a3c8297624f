#pragma once
// Differentiable functions: each runs a kernel from ops/ and records its backward (see
// core/autograd/node.h). Floating inputs are contiguous f32 or bf16 tensors unless stated; a
// non-contiguous input is an error, not a silent copy. The compute dtype is the activation input's:
// outputs have it, arithmetic is fp32 and each bf16 output is rounded once. Parameters (linear and
// layer_norm weights and biases) of another dtype — fp32 master weights under bf16 mixed precision —
// are converted for the kernel and their gradients accumulated in their own dtype
// (docs/mixed_precision.md). Every function runs on the device of its inputs: the
// ops/cpu kernel on the cpu, its ops/cuda twin on the device's compute stream on a cuda device
// (docs/cuda.md, "Tensors and functions on the GPU"); inputs on different devices are an error
// naming the function and each input's device.
#include <cstdint>

#include "core/tensor.h"

namespace meridian::fn {

// x (..., C) · weightᵀ + bias, weight (OC, C), bias (OC) or undefined → (..., OC).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// gelu(linear(x, weight, bias)) as one function: on a GPU the GELU is the product's epilogue
// (cuBLASLt), saving a pass over the output; the cpu gives the composition's exact bits.
Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// The transformer's MLP, linear(gelu(linear(x, fc_weight, fc_bias)), proj_weight, proj_bias), as one
// function: on a GPU the GELU rides in c_fc's epilogue and its derivative in the epilogue of c_proj's
// input-gradient product (bf16); the cpu gives the composition's exact bits. Either bias may be
// undefined (a row-parallel c_proj adds its bias after the reduction).
Tensor mlp(const Tensor& x, const Tensor& fc_weight, const Tensor& fc_bias, const Tensor& proj_weight,
           const Tensor& proj_bias = Tensor());

// LayerNorm over the last axis with affine weight and bias (C each).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps = 1e-5f);

// GELU, tanh form.
Tensor gelu(const Tensor& x);

// a + b where b's shape equals a's or is a suffix of it (b repeats over a's leading axes: biases,
// position embeddings).
Tensor add(const Tensor& a, const Tensor& b);

// alpha · x
Tensor scale(const Tensor& x, float alpha);

// x converted to `dtype` (f32 or bf16; rounding to nearest even into bf16); the gradient is converted
// back. The one place activations change precision (the model's embedding output, under bf16).
Tensor cast(const Tensor& x, DType dtype);

// Σ x over all elements → one-element tensor of shape [].
Tensor sum(const Tensor& x);

// Causal self-attention over a fused qkv (B, T, 3C) with `num_heads` heads → (B, T, C).
Tensor causal_self_attention(const Tensor& qkv, int64_t num_heads);

// The kernel behind bf16 attention on a GPU (process-wide; f32 and the cpu are unaffected):
//   flash           tensor-core flash attention, O(T) saved per head (the default; head sizes that
//                   are multiples of 16 up to 128, others fall back to batched_matmul);
//   batched_matmul  cuBLASLt batched products with the T×T probabilities saved for backward.
// For benchmarks and tests that compare the two.
enum class CudaBf16Attention { flash, batched_matmul };
void set_cuda_bf16_attention(CudaBf16Attention kernel);

// Rows of `table` (R, C, f32) picked by `ids` (i32, any shape) → (ids.shape..., C). Ids are checked.
Tensor embedding(const Tensor& ids, const Tensor& table);

// The same for a table (R, C) that holds rows [first_row, first_row + R) of a larger one (a
// vocabulary-parallel slice): ids outside the slice give zero rows and no gradient. Ids must be ≥ 0,
// and below `total_rows` (the whole table's rows) when that is given (≥ 0).
Tensor embedding_slice(const Tensor& ids, const Tensor& table, int64_t first_row, int64_t total_rows = -1);

// Mean softmax cross-entropy of `logits` (..., Vp) against `targets` (i32, logits' leading shape)
// over the first `vocab_size` columns only (the rest is padding). Negative targets are ignored;
// the mean is over the rest. → one-element f32 tensor of shape [] (for bf16 logits too).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t vocab_size);

}  // namespace meridian::fn

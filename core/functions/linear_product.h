#pragma once
// The pieces of a product x·weightᵀ + bias that the functions built on it share (linear,
// linear_gelu, mlp): checked operands in the compute dtype, the forward and backward kernels of the
// device the tensors live on, and the deferral of weight gradients under autograd::DeferWeightGrads.
#include <cstdint>

#include "core/autograd/node.h"
#include "core/tensor.h"

namespace meridian::fn::detail {

// The operands of one product, in the compute dtype (the input's): x (rows, in), the weight (out, in)
// and its output gradient. The weight here may be a working copy of an fp32 master weight.
struct Operands {
  Tensor x, weight;
  int64_t rows, in_features, out_features;
};

// The checked operands of linear(x, weight, bias) in the compute dtype (the input's): a weight or
// bias of another dtype (an fp32 master weight under bf16 mixed precision) is converted for the
// product, the copy kept for backward.
struct Product {
  Operands op;
  Tensor bias;  // in the compute dtype, or undefined
  Shape out_shape;
  Device device;
};

// Checks x, weight and bias for `function` (float dtypes, shapes, one device) and converts them.
Product checked_product(const char* function, const Tensor& x, const Tensor& weight, const Tensor& bias);

// out = x·weightᵀ + bias on the product's device.
void matmul_forward_on(const Product& p, const Tensor& out);

// out = gelu(x·weightᵀ + bias) and pre = x·weightᵀ + bias (the GELU's input, for backward). On a GPU
// the GELU runs in the product's epilogue (ops::cuda::matmul_forward_gelu); on the cpu the two
// kernels run one after the other, so the result is gelu(linear(...)) bit for bit.
void matmul_gelu_forward_on(const Product& p, const Tensor& pre, const Tensor& out);

// The matmul backward kernel of the device the tensors live on: dinp += dout·weight,
// dweight += doutᵀ·x, dbias += column sums of dout (any of the three may be undefined). dinp has the
// compute dtype; dweight and dbias have the master weight's, which may be wider.
void matmul_backward_on(const Operands& op, const autograd::BackwardContext::GradientTarget& dinp,
                        const Tensor& dweight, const Tensor& dbias, const Tensor& dout);

// The gradients of the weight and bias at inputs `weight_input` and `bias_input` of the function
// being differentiated, given the product's output gradient: queued when autograd::DeferWeightGrads
// is active and both are leaves (zero-bubble pipelines run them later), else computed now. Inputs
// that need no gradient are skipped.
void weight_grads(autograd::BackwardContext& ctx, const Operands& op, const Tensor& grad_output, int weight_input,
                  int bias_input);

// The three gradients of a product whose x, weight and bias are the function's inputs 0, 1 and 2
// (the weight and bias deferred as weight_grads does).
void linear_backward(autograd::BackwardContext& ctx, const Operands& op, const Tensor& grad_output);

}  // namespace meridian::fn::detail

#include "core/autograd/node.h"
#include "core/autograd/weight_grad_store.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/matmul.h"

#if MERIDIAN_CUDA
#include "ops/cuda/matmul.h"
#endif

namespace meridian::fn {

namespace {

// The matmul backward kernel of the device the tensors live on: dinp += dout·weight,
// dweight += doutᵀ·x, dbias += column sums of dout (any of the three may be null).
void matmul_backward_on(Device device, float* dinp, float* dweight, float* dbias, const float* dout, const float* x,
                        const float* weight, int64_t rows, int64_t in_features, int64_t out_features) {
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    ops::cuda::matmul_backward<float, float>(dinp, dweight, dbias, dout, x, weight, rows, in_features, out_features,
                                             cuda.stream());
#endif
    return;
  }
  ops::cpu::matmul_backward(dinp, dweight, dbias, dout, x, weight, rows, in_features, out_features);
}

// Under autograd::DeferWeightGrads: computes the input gradient now and queues dweight and dbias.
// The matmul kernel computes the three gradients with independent products, so the split gives the
// same bits as the single call. Returns false (nothing done) when there is nothing to defer or
// the weight or bias is not a leaf (then its gradient must flow on during this pass).
bool defer_weight_grads(autograd::BackwardContext& ctx, const Tensor& x, const Tensor& weight, int64_t rows,
                        int64_t in_features, int64_t out_features) {
  autograd::WeightGradStore* store = autograd::deferred_weight_grads();
  if (store == nullptr) return false;
  const bool weight_grad = ctx.needs_input_grad(1), bias_grad = ctx.needs_input_grad(2);
  if (!weight_grad && !bias_grad) return false;
  std::shared_ptr<autograd::LeafNode> weight_leaf = weight_grad ? ctx.leaf_input(1) : nullptr;
  std::shared_ptr<autograd::LeafNode> bias_leaf = bias_grad ? ctx.leaf_input(2) : nullptr;
  if ((weight_grad && !weight_leaf) || (bias_grad && !bias_leaf)) return false;

  const Tensor grad_output = ctx.grad_output();
  const Device device = x.device();
  if (float* dinp = detail::grad_or_null(ctx, 0))
    matmul_backward_on(device, dinp, nullptr, nullptr, grad_output.data<float>(), x.data<float>(),
                       weight.data<float>(), rows, in_features, out_features);
  store->add([x, weight, grad_output, weight_leaf, bias_leaf, rows, in_features, out_features, device] {
    profiler::Scope scope("linear", "weight_grad");
    float* dweight = weight_leaf ? weight_leaf->grad_buffer().data<float>() : nullptr;
    float* dbias = bias_leaf ? bias_leaf->grad_buffer().data<float>() : nullptr;
    matmul_backward_on(device, nullptr, dweight, dbias, grad_output.data<float>(), x.data<float>(),
                       weight.data<float>(), rows, in_features, out_features);
  });
  return true;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profiler::Scope scope("linear", "forward");
  detail::require_f32(x, "linear", "input");
  detail::require_f32(weight, "linear", "weight");
  detail::require_ndim(weight, 2, "linear", "weight");
  const int64_t in_features = weight.dim(1);
  const int64_t out_features = weight.dim(0);
  if (x.ndim() < 1 || x.dim(-1) != in_features)
    MERIDIAN_FAIL("linear: input of shape ", shape_str(x.shape()), " does not end in ", in_features,
                  " (weight '", weight.name(), "' has shape ", shape_str(weight.shape()), ")");
  if (bias.defined()) {
    detail::require_f32(bias, "linear", "bias");
    if (bias.shape() != Shape{out_features})
      MERIDIAN_FAIL("linear: bias of shape ", shape_str(bias.shape()), " for ", out_features, " outputs");
  }
  const Device device = detail::require_same_device("linear", {{"input", &x}, {"weight", &weight}, {"bias", &bias}});
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = Tensor::empty(out_shape, DType::f32, device);
  const int64_t rows = x.numel() / std::max<int64_t>(in_features, 1);
  const float* bias_data = bias.defined() ? bias.data<float>() : nullptr;
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    ops::cuda::matmul_forward<float, float>(out.data<float>(), x.data<float>(), weight.data<float>(), bias_data, rows,
                                            in_features, out_features, cuda.stream());
#endif
  } else {
    ops::cpu::matmul_forward(out.data<float>(), x.data<float>(), weight.data<float>(), bias_data, rows, in_features,
                             out_features);
  }
  autograd::record("linear", {x, weight, bias}, out,
                   [x, weight, rows, in_features, out_features](autograd::BackwardContext& ctx) {
                     if (defer_weight_grads(ctx, x, weight, rows, in_features, out_features)) return;
                     matmul_backward_on(x.device(), detail::grad_or_null(ctx, 0), detail::grad_or_null(ctx, 1),
                                        detail::grad_or_null(ctx, 2), ctx.grad_output().data<float>(),
                                        x.data<float>(), weight.data<float>(), rows, in_features, out_features);
                   });
  return out;
}

}  // namespace meridian::fn

#include "core/autograd/node.h"
#include "core/autograd/weight_grad_store.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/matmul.h"

#if MERIDIAN_CUDA
#include "ops/cuda/matmul.h"
#endif

namespace meridian::fn {

namespace {

using Access = detail::FloatView::Access;

// The operands of one product, in the compute dtype (the input's): x (rows, in), the weight (out, in)
// and its output gradient. The weight here may be a working copy of an fp32 master weight.
struct Operands {
  Tensor x, weight;
  int64_t rows, in_features, out_features;
};

// The matmul backward kernel of the device the tensors live on: dinp += dout·weight,
// dweight += doutᵀ·x, dbias += column sums of dout (any of the three may be undefined). dinp has the
// compute dtype; dweight and dbias have the master weight's, which may be wider: on the GPU a bf16
// product then accumulates straight into the fp32 master gradient (cuBLASLt with an fp32 C).
void matmul_backward_on(const Operands& op, const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout) {
  if (op.x.device().is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(op.x.device());
    const DType wide = dweight.defined() ? dweight.dtype() : dbias.defined() ? dbias.dtype() : op.x.dtype();
    detail::dispatch_float(op.x.dtype(), [&]<class E>() {
      const bool same = wide == op.x.dtype();
      ops::cuda::matmul_backward<E, E>(detail::element_ptr<E>(dinp), same ? detail::element_ptr<E>(dweight) : nullptr,
                                       same ? detail::element_ptr<E>(dbias) : nullptr, detail::element_ptr<E>(dout),
                                       detail::element_ptr<E>(op.x), detail::element_ptr<E>(op.weight), op.rows,
                                       op.in_features, op.out_features, cuda.stream());
      if (!same && (dweight.defined() || dbias.defined()))
        ops::cuda::matmul_backward<float, E>(nullptr, detail::element_ptr<float>(dweight),
                                             detail::element_ptr<float>(dbias), detail::element_ptr<E>(dout),
                                             detail::element_ptr<E>(op.x), detail::element_ptr<E>(op.weight), op.rows,
                                             op.in_features, op.out_features, cuda.stream());
    });
#endif
    return;
  }
  const detail::FloatView gx(dinp, Access::accumulate), gw(dweight, Access::accumulate), gb(dbias, Access::accumulate);
  const detail::FloatView d(dout, Access::read), x(op.x, Access::read), w(op.weight, Access::read);
  ops::cpu::matmul_backward(gx.data(), gw.data(), gb.data(), d.data(), x.data(), w.data(), op.rows, op.in_features,
                            op.out_features);
}

// Under autograd::DeferWeightGrads: computes the input gradient now and queues dweight and dbias.
// The matmul kernel computes the three gradients with independent products, so the split gives the
// same bits as the single call. Returns false (nothing done) when there is nothing to defer or
// the weight or bias is not a leaf (then its gradient must flow on during this pass).
bool defer_weight_grads(autograd::BackwardContext& ctx, const Operands& op) {
  autograd::WeightGradStore* store = autograd::deferred_weight_grads();
  if (store == nullptr) return false;
  const bool weight_grad = ctx.needs_input_grad(1), bias_grad = ctx.needs_input_grad(2);
  if (!weight_grad && !bias_grad) return false;
  std::shared_ptr<autograd::LeafNode> weight_leaf = weight_grad ? ctx.leaf_input(1) : nullptr;
  std::shared_ptr<autograd::LeafNode> bias_leaf = bias_grad ? ctx.leaf_input(2) : nullptr;
  if ((weight_grad && !weight_leaf) || (bias_grad && !bias_leaf)) return false;

  const Tensor grad_output = ctx.grad_output();
  matmul_backward_on(op, detail::grad_or_undefined(ctx, 0), Tensor(), Tensor(), grad_output);
  store->add([op, grad_output, weight_leaf, bias_leaf] {
    profiler::Scope scope("linear", "weight_grad");
    matmul_backward_on(op, Tensor(), weight_leaf ? weight_leaf->grad_buffer() : Tensor(),
                       bias_leaf ? bias_leaf->grad_buffer() : Tensor(), grad_output);
  });
  return true;
}

}  // namespace

// The compute dtype is the input's. A weight or bias of another dtype (an fp32 master weight under
// bf16 mixed precision) is converted for the product, the copy kept for backward, and its gradient
// is accumulated in the master's own dtype.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profiler::Scope scope("linear", "forward");
  detail::require_float(x, "linear", "input");
  detail::require_float(weight, "linear", "weight");
  detail::require_ndim(weight, 2, "linear", "weight");
  const int64_t in_features = weight.dim(1);
  const int64_t out_features = weight.dim(0);
  if (x.ndim() < 1 || x.dim(-1) != in_features)
    MERIDIAN_FAIL("linear: input of shape ", shape_str(x.shape()), " does not end in ", in_features,
                  " (weight '", weight.name(), "' has shape ", shape_str(weight.shape()), ")");
  if (bias.defined()) {
    detail::require_float(bias, "linear", "bias");
    detail::require_dtype(bias, weight.dtype(), "linear", "bias");
    if (bias.shape() != Shape{out_features})
      MERIDIAN_FAIL("linear: bias of shape ", shape_str(bias.shape()), " for ", out_features, " outputs");
  }
  const Device device = detail::require_same_device("linear", {{"input", &x}, {"weight", &weight}, {"bias", &bias}});
  const DType dtype = x.dtype();
  if (weight.dtype() != dtype && weight.dtype() != DType::f32)
    MERIDIAN_FAIL("linear: weight '", weight.name(), "' is ", dtype_name(weight.dtype()), " but the input is ",
                  dtype_name(dtype), ": weights are the input's dtype or f32 master weights");
  const Operands op{x, weight.to(dtype), x.numel() / std::max<int64_t>(in_features, 1), in_features, out_features};
  const Tensor compute_bias = bias.defined() ? bias.to(dtype) : Tensor();
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = Tensor::empty(out_shape, dtype, device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    detail::dispatch_float(dtype, [&]<class E>() {
      ops::cuda::matmul_forward<E, E>(detail::element_ptr<E>(out), detail::element_ptr<E>(x),
                                      detail::element_ptr<E>(op.weight), detail::element_ptr<E>(compute_bias), op.rows,
                                      in_features, out_features, cuda.stream());
    });
#endif
  } else {
    const detail::FloatView o(out, Access::overwrite), in(x, Access::read), w(op.weight, Access::read),
        b(compute_bias, Access::read);
    ops::cpu::matmul_forward(o.data(), in.data(), w.data(), b.data(), op.rows, in_features, out_features);
  }
  autograd::record("linear", {x, weight, bias}, out, [op](autograd::BackwardContext& ctx) {
    if (defer_weight_grads(ctx, op)) return;
    matmul_backward_on(op, detail::grad_or_undefined(ctx, 0), detail::grad_or_undefined(ctx, 1),
                       detail::grad_or_undefined(ctx, 2), ctx.grad_output());
  });
  return out;
}

}  // namespace meridian::fn

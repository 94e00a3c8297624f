#include "core/autograd/node.h"
#include "core/autograd/weight_grad_store.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/functions/functions.h"
#include "core/functions/gelu_kernels.h"
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
void matmul_backward_on(const Operands& op, const autograd::BackwardContext::GradientTarget& dinp,
                        const Tensor& dweight, const Tensor& dbias, const Tensor& dout) {
  if (op.x.device().is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(op.x.device());
    const DType wide = dweight.defined() ? dweight.dtype() : dbias.defined() ? dbias.dtype() : op.x.dtype();
    detail::dispatch_float(op.x.dtype(), [&]<class E>() {
      const bool same = wide == op.x.dtype();
      ops::cuda::matmul_backward<E, E>(detail::element_ptr<E>(dinp.tensor),
                                       same ? detail::element_ptr<E>(dweight) : nullptr,
                                       same ? detail::element_ptr<E>(dbias) : nullptr, detail::element_ptr<E>(dout),
                                       detail::element_ptr<E>(op.x), detail::element_ptr<E>(op.weight), op.rows,
                                       op.in_features, op.out_features, cuda.stream(), dinp.overwrite);
      if (!same && (dweight.defined() || dbias.defined()))
        ops::cuda::matmul_backward<float, E>(nullptr, detail::element_ptr<float>(dweight),
                                             detail::element_ptr<float>(dbias), detail::element_ptr<E>(dout),
                                             detail::element_ptr<E>(op.x), detail::element_ptr<E>(op.weight), op.rows,
                                             op.in_features, op.out_features, cuda.stream());
    });
#endif
    return;
  }
  const detail::FloatView gx(dinp.tensor, Access::accumulate), gw(dweight, Access::accumulate),
      gb(dbias, Access::accumulate);
  const detail::FloatView d(dout, Access::read), x(op.x, Access::read), w(op.weight, Access::read);
  ops::cpu::matmul_backward(gx.data(), gw.data(), gb.data(), d.data(), x.data(), w.data(), op.rows, op.in_features,
                            op.out_features);
}

// Under autograd::DeferWeightGrads: computes the input gradient now and queues dweight and dbias,
// given the gradient of the product's output (grad_output).
// The matmul kernel computes the three gradients with independent products, so the split gives the
// same bits as the single call. Returns false (nothing done) when there is nothing to defer or
// the weight or bias is not a leaf (then its gradient must flow on during this pass).
bool defer_weight_grads(autograd::BackwardContext& ctx, const Operands& op, const Tensor& grad_output) {
  autograd::WeightGradStore* store = autograd::deferred_weight_grads();
  if (store == nullptr) return false;
  const bool weight_grad = ctx.needs_input_grad(1), bias_grad = ctx.needs_input_grad(2);
  if (!weight_grad && !bias_grad) return false;
  std::shared_ptr<autograd::LeafNode> weight_leaf = weight_grad ? ctx.leaf_input(1) : nullptr;
  std::shared_ptr<autograd::LeafNode> bias_leaf = bias_grad ? ctx.leaf_input(2) : nullptr;
  if ((weight_grad && !weight_leaf) || (bias_grad && !bias_leaf)) return false;

  matmul_backward_on(op, detail::target_or_undefined(ctx, 0), Tensor(), Tensor(), grad_output);
  store->add([op, grad_output, weight_leaf, bias_leaf] {
    profiler::Scope scope("linear", "weight_grad");
    matmul_backward_on(op, {}, weight_leaf ? weight_leaf->grad_buffer() : Tensor(),
                       bias_leaf ? bias_leaf->grad_buffer() : Tensor(), grad_output);
  });
  return true;
}

// The checked operands of linear(x, weight, bias) in the compute dtype (the input's): a weight or
// bias of another dtype (an fp32 master weight under bf16 mixed precision) is converted for the
// product, the copy kept for backward.
struct Product {
  Operands op;
  Tensor bias;  // in the compute dtype, or undefined
  Shape out_shape;
  Device device;
};

Product checked_product(const char* function, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  detail::require_float(x, function, "input");
  detail::require_float(weight, function, "weight");
  detail::require_ndim(weight, 2, function, "weight");
  const int64_t in_features = weight.dim(1);
  const int64_t out_features = weight.dim(0);
  if (x.ndim() < 1 || x.dim(-1) != in_features)
    MERIDIAN_FAIL(function, ": input of shape ", shape_str(x.shape()), " does not end in ", in_features,
                  " (weight '", weight.name(), "' has shape ", shape_str(weight.shape()), ")");
  if (bias.defined()) {
    detail::require_float(bias, function, "bias");
    detail::require_dtype(bias, weight.dtype(), function, "bias");
    if (bias.shape() != Shape{out_features})
      MERIDIAN_FAIL(function, ": bias of shape ", shape_str(bias.shape()), " for ", out_features, " outputs");
  }
  const Device device = detail::require_same_device(function, {{"input", &x}, {"weight", &weight}, {"bias", &bias}});
  const DType dtype = x.dtype();
  if (weight.dtype() != dtype && weight.dtype() != DType::f32)
    MERIDIAN_FAIL(function, ": weight '", weight.name(), "' is ", dtype_name(weight.dtype()), " but the input is ",
                  dtype_name(dtype), ": weights are the input's dtype or f32 master weights");
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  return {Operands{x, weight.to(dtype), x.numel() / std::max<int64_t>(in_features, 1), in_features, out_features},
          bias.defined() ? bias.to(dtype) : Tensor(), out_shape, device};
}

// out = x·weightᵀ + bias on the product's device.
void matmul_forward_on(const Product& p, const Tensor& out) {
  const Operands& op = p.op;
  if (p.device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(p.device);
    detail::dispatch_float(op.x.dtype(), [&]<class E>() {
      ops::cuda::matmul_forward<E, E>(detail::element_ptr<E>(out), detail::element_ptr<E>(op.x),
                                      detail::element_ptr<E>(op.weight), detail::element_ptr<E>(p.bias), op.rows,
                                      op.in_features, op.out_features, cuda.stream());
    });
#endif
    return;
  }
  const detail::FloatView o(out, Access::overwrite), in(op.x, Access::read), w(op.weight, Access::read),
      b(p.bias, Access::read);
  ops::cpu::matmul_forward(o.data(), in.data(), w.data(), b.data(), op.rows, op.in_features, op.out_features);
}

// The three gradients of the product (or the input gradient now and the rest deferred).
void linear_backward(autograd::BackwardContext& ctx, const Operands& op, const Tensor& grad_output) {
  if (defer_weight_grads(ctx, op, grad_output)) return;
  // The parameters' buffers first: should an input also be the weight or bias (one edge), its
  // gradient target is then the accumulation buffer, never a fresh one the kernel overwrites.
  const Tensor dweight = detail::grad_or_undefined(ctx, 1), dbias = detail::grad_or_undefined(ctx, 2);
  matmul_backward_on(op, detail::target_or_undefined(ctx, 0), dweight, dbias, grad_output);
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profiler::Scope scope("linear", "forward");
  const Product p = checked_product("linear", x, weight, bias);
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), p.device);
  matmul_forward_on(p, out);
  autograd::record("linear", {x, weight, bias}, out,
                   [op = p.op](autograd::BackwardContext& ctx) { linear_backward(ctx, op, ctx.grad_output()); });
  return out;
}

// On a GPU the GELU runs in the product's epilogue (ops::cuda::matmul_forward_gelu), which also
// writes the GELU's input for backward; on the cpu the two kernels run one after the other, so the
// result is gelu(linear(...)) bit for bit. Backward: dpre = gelu'(pre)·dout, then the product's.
Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profiler::Scope scope("linear_gelu", "forward");
  const Product p = checked_product("linear_gelu", x, weight, bias);
  const Tensor pre = Tensor::empty(p.out_shape, x.dtype(), p.device);
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), p.device);
  if (p.device.is_cuda()) {
#if MERIDIAN_CUDA
    const Operands& op = p.op;
    const detail::CudaScope cuda(p.device);
    detail::dispatch_float(x.dtype(), [&]<class E>() {
      ops::cuda::matmul_forward_gelu<E, E>(detail::element_ptr<E>(out), detail::element_ptr<E>(pre),
                                           detail::element_ptr<E>(op.x), detail::element_ptr<E>(op.weight),
                                           detail::element_ptr<E>(p.bias), op.rows, op.in_features, op.out_features,
                                           cuda.stream());
    });
#endif
  } else {
    matmul_forward_on(p, pre);
    detail::gelu_forward_into(out, pre);
  }
  autograd::record("linear_gelu", {x, weight, bias}, out, [op = p.op, pre](autograd::BackwardContext& ctx) {
    // cuda: the kernel writes every element; the cpu kernel adds, into zeros.
    const bool on_cuda = pre.device().is_cuda();
    const Tensor dpre = on_cuda ? Tensor::empty(pre.shape(), pre.dtype(), pre.device())
                                : Tensor::zeros(pre.shape(), pre.dtype(), pre.device());
    detail::gelu_backward_into(dpre, pre, ctx.grad_output(), /*overwrite=*/on_cuda);
    linear_backward(ctx, op, dpre);
  });
  return out;
}

}  // namespace meridian::fn

#include "core/autograd/node.h"
#include "core/autograd/weight_grad_store.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/functions/functions.h"
#include "core/functions/gelu_kernels.h"
#include "core/functions/linear_product.h"
#include "core/functions/working_copies.h"
#include "core/profiler.h"
#include "ops/cpu/matmul.h"

#if MERIDIAN_CUDA
#include "ops/cuda/matmul.h"
#endif

namespace meridian::fn {

namespace detail {

namespace {
using Access = FloatView::Access;
}  // namespace

void matmul_backward_on(const Operands& op, const autograd::BackwardContext::GradientTarget& dinp,
                        const Tensor& dweight, const Tensor& dbias, const Tensor& dout) {
  if (op.x.device().is_cuda()) {
#if MERIDIAN_CUDA
    // On the GPU a bf16 product accumulates straight into the fp32 master gradient (cuBLASLt with an
    // fp32 C).
    const CudaScope cuda(op.x.device());
    const DType wide = dweight.defined() ? dweight.dtype() : dbias.defined() ? dbias.dtype() : op.x.dtype();
    dispatch_float(op.x.dtype(), [&]<class E>() {
      const bool same = wide == op.x.dtype();
      ops::cuda::matmul_backward<E, E>(element_ptr<E>(dinp.tensor), same ? element_ptr<E>(dweight) : nullptr,
                                       same ? element_ptr<E>(dbias) : nullptr, element_ptr<E>(dout),
                                       element_ptr<E>(op.x), element_ptr<E>(op.weight), op.rows, op.in_features,
                                       op.out_features, cuda.stream(), dinp.overwrite);
      if (!same && (dweight.defined() || dbias.defined()))
        ops::cuda::matmul_backward<float, E>(nullptr, element_ptr<float>(dweight), element_ptr<float>(dbias),
                                             element_ptr<E>(dout), element_ptr<E>(op.x), element_ptr<E>(op.weight),
                                             op.rows, op.in_features, op.out_features, cuda.stream());
    });
#endif
    return;
  }
  const FloatView gx(dinp.tensor, Access::accumulate), gw(dweight, Access::accumulate),
      gb(dbias, Access::accumulate);
  const FloatView d(dout, Access::read), x(op.x, Access::read), w(op.weight, Access::read);
  ops::cpu::matmul_backward(gx.data(), gw.data(), gb.data(), d.data(), x.data(), w.data(), op.rows, op.in_features,
                            op.out_features);
}

// The matmul kernel computes the three gradients with independent products, so computing the
// weight's and bias's apart from the input's gives the same bits as one call.
void weight_grads(autograd::BackwardContext& ctx, const Operands& op, const Tensor& grad_output, int weight_input,
                  int bias_input) {
  const bool weight_grad = ctx.needs_input_grad(weight_input), bias_grad = ctx.needs_input_grad(bias_input);
  if (!weight_grad && !bias_grad) return;
  autograd::WeightGradStore* store = autograd::deferred_weight_grads();
  std::shared_ptr<autograd::LeafNode> weight_leaf = weight_grad ? ctx.leaf_input(weight_input) : nullptr;
  std::shared_ptr<autograd::LeafNode> bias_leaf = bias_grad ? ctx.leaf_input(bias_input) : nullptr;
  // A weight or bias that is not a leaf must have its gradient flow on during this pass.
  if (store == nullptr || (weight_grad && !weight_leaf) || (bias_grad && !bias_leaf)) {
    matmul_backward_on(op, {}, grad_or_undefined(ctx, weight_input), grad_or_undefined(ctx, bias_input), grad_output);
    return;
  }
  store->add([op, grad_output, weight_leaf, bias_leaf] {
    profiler::Scope scope("linear", "weight_grad");
    matmul_backward_on(op, {}, weight_leaf ? weight_leaf->grad_buffer() : Tensor(),
                       bias_leaf ? bias_leaf->grad_buffer() : Tensor(), grad_output);
  });
}

Product checked_product(const char* function, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  require_float(x, function, "input");
  require_float(weight, function, "weight");
  require_ndim(weight, 2, function, "weight");
  const int64_t in_features = weight.dim(1);
  const int64_t out_features = weight.dim(0);
  if (x.ndim() < 1 || x.dim(-1) != in_features)
    MERIDIAN_FAIL(function, ": input of shape ", shape_str(x.shape()), " does not end in ", in_features,
                  " (weight '", weight.name(), "' has shape ", shape_str(weight.shape()), ")");
  if (bias.defined()) {
    require_float(bias, function, "bias");
    require_dtype(bias, weight.dtype(), function, "bias");
    if (bias.shape() != Shape{out_features})
      MERIDIAN_FAIL(function, ": bias of shape ", shape_str(bias.shape()), " for ", out_features, " outputs");
  }
  const Device device = require_same_device(function, {{"input", &x}, {"weight", &weight}, {"bias", &bias}});
  const DType dtype = x.dtype();
  if (weight.dtype() != dtype && weight.dtype() != DType::f32)
    MERIDIAN_FAIL(function, ": weight '", weight.name(), "' is ", dtype_name(weight.dtype()), " but the input is ",
                  dtype_name(dtype), ": weights are the input's dtype or f32 master weights");
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  return {Operands{x, working_copy(weight, dtype), x.numel() / std::max<int64_t>(in_features, 1), in_features,
                   out_features},
          working_copy(bias, dtype), out_shape, device};
}

void matmul_forward_on(const Product& p, const Tensor& out) {
  const Operands& op = p.op;
  if (p.device.is_cuda()) {
#if MERIDIAN_CUDA
    const CudaScope cuda(p.device);
    dispatch_float(op.x.dtype(), [&]<class E>() {
      ops::cuda::matmul_forward<E, E>(element_ptr<E>(out), element_ptr<E>(op.x), element_ptr<E>(op.weight),
                                      element_ptr<E>(p.bias), op.rows, op.in_features, op.out_features,
                                      cuda.stream());
    });
#endif
    return;
  }
  const FloatView o(out, Access::overwrite), in(op.x, Access::read), w(op.weight, Access::read),
      b(p.bias, Access::read);
  ops::cpu::matmul_forward(o.data(), in.data(), w.data(), b.data(), op.rows, op.in_features, op.out_features);
}

void matmul_gelu_forward_on(const Product& p, const Tensor& pre, const Tensor& out) {
  if (!p.device.is_cuda()) {
    matmul_forward_on(p, pre);
    gelu_forward_into(out, pre);
    return;
  }
#if MERIDIAN_CUDA
  const Operands& op = p.op;
  const CudaScope cuda(p.device);
  dispatch_float(op.x.dtype(), [&]<class E>() {
    ops::cuda::matmul_forward_gelu<E, E>(element_ptr<E>(out), element_ptr<E>(pre), element_ptr<E>(op.x),
                                         element_ptr<E>(op.weight), element_ptr<E>(p.bias), op.rows, op.in_features,
                                         op.out_features, cuda.stream());
  });
#endif
}

void linear_backward(autograd::BackwardContext& ctx, const Operands& op, const Tensor& grad_output) {
  // The parameters' gradients first: should an input also be the weight or bias (one edge), its
  // gradient target is then the accumulation buffer, never a fresh one the kernel overwrites.
  weight_grads(ctx, op, grad_output, 1, 2);
  if (ctx.needs_input_grad(0)) matmul_backward_on(op, target_or_undefined(ctx, 0), Tensor(), Tensor(), grad_output);
}

}  // namespace detail

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profiler::Scope scope("linear", "forward");
  const detail::Product p = detail::checked_product("linear", x, weight, bias);
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), p.device);
  detail::matmul_forward_on(p, out);
  autograd::record("linear", {x, weight, bias}, out, [op = p.op](autograd::BackwardContext& ctx) {
    detail::linear_backward(ctx, op, ctx.grad_output());
  });
  return out;
}

// Backward: dpre = gelu'(pre)·dout, then the product's.
Tensor linear_gelu(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profiler::Scope scope("linear_gelu", "forward");
  const detail::Product p = detail::checked_product("linear_gelu", x, weight, bias);
  const Tensor pre = Tensor::empty(p.out_shape, x.dtype(), p.device);
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), p.device);
  detail::matmul_gelu_forward_on(p, pre, out);
  autograd::record("linear_gelu", {x, weight, bias}, out, [op = p.op, pre](autograd::BackwardContext& ctx) {
    // cuda: the kernel writes every element; the cpu kernel adds, into zeros.
    const bool on_cuda = pre.device().is_cuda();
    const Tensor dpre = on_cuda ? Tensor::empty(pre.shape(), pre.dtype(), pre.device())
                                : Tensor::zeros(pre.shape(), pre.dtype(), pre.device());
    detail::gelu_backward_into(dpre, pre, ctx.grad_output(), /*overwrite=*/on_cuda);
    detail::linear_backward(ctx, op, dpre);
  });
  return out;
}

}  // namespace meridian::fn

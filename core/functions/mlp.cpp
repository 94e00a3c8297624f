// fn::mlp: the transformer's MLP, linear(gelu(linear(x, fc_weight, fc_bias)), proj_weight, proj_bias),
// as one function so that each GELU pass can ride in a product's epilogue on the GPU: the forward
// GELU in c_fc's (as linear_gelu) and, in backward, GELU's derivative in c_proj's input-gradient
// product (ops::cuda::matmul_backward_dgelu), which then writes the gradient of the GELU's input
// directly instead of writing the GELU output's gradient and reading it back.
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/functions/gelu_kernels.h"
#include "core/functions/linear_product.h"
#include "core/profiler.h"

#if MERIDIAN_CUDA
#include "ops/cuda/matmul.h"
#endif

namespace meridian::fn {

namespace {

// dpre = (dout · proj.weight) ⊙ gelu'(pre): the gradient of the GELU's input, in the compute dtype.
// The cpu runs linear's input gradient into zeros and then GELU's backward, the composition's bits.
Tensor gelu_input_gradient(const detail::Operands& proj, const Tensor& pre, const Tensor& dout) {
  if (pre.device().is_cuda()) {
    Tensor dpre = Tensor::empty(pre.shape(), pre.dtype(), pre.device());
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(pre.device());
    detail::dispatch_float(pre.dtype(), [&]<class E>() {
      ops::cuda::matmul_backward_dgelu<E, E>(detail::element_ptr<E>(dpre), detail::element_ptr<E>(dout),
                                             detail::element_ptr<E>(proj.weight), detail::element_ptr<E>(pre),
                                             proj.rows, proj.in_features, proj.out_features, cuda.stream());
    });
#endif
    return dpre;
  }
  const Tensor dhidden = Tensor::zeros(pre.shape(), pre.dtype(), pre.device());
  detail::matmul_backward_on(proj, {dhidden, false}, Tensor(), Tensor(), dout);
  Tensor dpre = Tensor::zeros(pre.shape(), pre.dtype(), pre.device());
  detail::gelu_backward_into(dpre, pre, dhidden);
  return dpre;
}

}  // namespace

Tensor mlp(const Tensor& x, const Tensor& fc_weight, const Tensor& fc_bias, const Tensor& proj_weight,
           const Tensor& proj_bias) {
  profiler::Scope scope("mlp", "forward");
  const detail::Product fc = detail::checked_product("mlp (c_fc)", x, fc_weight, fc_bias);
  const Tensor pre = Tensor::empty(fc.out_shape, x.dtype(), fc.device);
  const Tensor hidden = Tensor::empty(fc.out_shape, x.dtype(), fc.device);
  detail::matmul_gelu_forward_on(fc, pre, hidden);
  const detail::Product proj = detail::checked_product("mlp (c_proj)", hidden, proj_weight, proj_bias);
  Tensor out = Tensor::empty(proj.out_shape, x.dtype(), proj.device);
  detail::matmul_forward_on(proj, out);
  autograd::record("mlp", {x, fc_weight, fc_bias, proj_weight, proj_bias}, out,
                   [fc = fc.op, proj = proj.op, pre](autograd::BackwardContext& ctx) {
                     const Tensor& dout = ctx.grad_output();
                     detail::weight_grads(ctx, proj, dout, 3, 4);
                     if (!ctx.needs_input_grad(0) && !ctx.needs_input_grad(1) && !ctx.needs_input_grad(2)) return;
                     detail::linear_backward(ctx, fc, gelu_input_gradient(proj, pre, dout));
                   });
  return out;
}

}  // namespace meridian::fn

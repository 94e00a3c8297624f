#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/functions/functions.h"
#include "core/functions/gelu_kernels.h"
#include "core/profiler.h"
#include "ops/cpu/gelu.h"

#if MERIDIAN_CUDA
#include "ops/cuda/gelu.h"
#endif

namespace meridian::fn {

using Access = detail::FloatView::Access;

namespace detail {

void gelu_forward_into(const Tensor& out, const Tensor& x) {
  if (x.device().is_cuda()) {
#if MERIDIAN_CUDA
    const CudaScope cuda(x.device());
    dispatch_float(x.dtype(), [&]<class E>() {
      ops::cuda::gelu_forward(element_ptr<E>(out), element_ptr<E>(x), x.numel(), cuda.stream());
    });
#endif
    return;
  }
  const FloatView o(out, Access::overwrite), in(x, Access::read);
  ops::cpu::gelu_forward(o.data(), in.data(), x.numel());
}

void gelu_backward_into(const Tensor& dinp, const Tensor& x, const Tensor& dout, bool overwrite) {
  if (x.device().is_cuda()) {
#if MERIDIAN_CUDA
    const CudaScope cuda(x.device());
    dispatch_float(x.dtype(), [&]<class E>() {
      ops::cuda::gelu_backward(element_ptr<E>(dinp), element_ptr<E>(x), element_ptr<E>(dout), x.numel(),
                               cuda.stream(), overwrite);
    });
#endif
    return;
  }
  MERIDIAN_CHECK(!overwrite, "gelu_backward_into: overwrite is a cuda mode");
  const FloatView gx(dinp, Access::accumulate), in(x, Access::read), d(dout, Access::read);
  ops::cpu::gelu_backward(gx.data(), in.data(), d.data(), x.numel());
}

}  // namespace detail

Tensor gelu(const Tensor& x) {
  profiler::Scope scope("gelu", "forward");
  detail::require_float(x, "gelu", "input");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  detail::gelu_forward_into(out, x);
  autograd::record("gelu", {x}, out, [x](autograd::BackwardContext& ctx) {
    const autograd::BackwardContext::GradientTarget dinp = ctx.gradient_target(0);
    detail::gelu_backward_into(dinp.tensor, x, ctx.grad_output(), dinp.overwrite);
  });
  return out;
}

}  // namespace meridian::fn

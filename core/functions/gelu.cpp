#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/gelu.h"

#if MERIDIAN_CUDA
#include "ops/cuda/gelu.h"
#endif

namespace meridian::fn {

using Access = detail::FloatView::Access;

Tensor gelu(const Tensor& x) {
  profiler::Scope scope("gelu", "forward");
  detail::require_float(x, "gelu", "input");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.device().is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(x.device());
    detail::dispatch_float(x.dtype(), [&]<class E>() {
      ops::cuda::gelu_forward(detail::element_ptr<E>(out), detail::element_ptr<E>(x), x.numel(), cuda.stream());
    });
#endif
  } else {
    const detail::FloatView o(out, Access::overwrite), in(x, Access::read);
    ops::cpu::gelu_forward(o.data(), in.data(), x.numel());
  }
  autograd::record("gelu", {x}, out, [x](autograd::BackwardContext& ctx) {
    const Tensor dinp = ctx.input_grad(0), dout = ctx.grad_output();
    if (x.device().is_cuda()) {
#if MERIDIAN_CUDA
      const detail::CudaScope cuda(x.device());
      detail::dispatch_float(x.dtype(), [&]<class E>() {
        ops::cuda::gelu_backward(detail::element_ptr<E>(dinp), detail::element_ptr<E>(x),
                                 detail::element_ptr<E>(dout), x.numel(), cuda.stream());
      });
#endif
      return;
    }
    const detail::FloatView gx(dinp, Access::accumulate), in(x, Access::read), d(dout, Access::read);
    ops::cpu::gelu_backward(gx.data(), in.data(), d.data(), x.numel());
  });
  return out;
}

}  // namespace meridian::fn

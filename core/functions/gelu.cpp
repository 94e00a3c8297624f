#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/gelu.h"

#if MERIDIAN_CUDA
#include "ops/cuda/gelu.h"
#endif

namespace meridian::fn {

Tensor gelu(const Tensor& x) {
  profiler::Scope scope("gelu", "forward");
  detail::require_f32(x, "gelu", "input");
  Tensor out = Tensor::empty(x.shape(), DType::f32, x.device());
  if (x.device().is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(x.device());
    ops::cuda::gelu_forward(out.data<float>(), x.data<float>(), x.numel(), cuda.stream());
#endif
  } else {
    ops::cpu::gelu_forward(out.data<float>(), x.data<float>(), x.numel());
  }
  autograd::record("gelu", {x}, out, [x](autograd::BackwardContext& ctx) {
    if (x.device().is_cuda()) {
#if MERIDIAN_CUDA
      const detail::CudaScope cuda(x.device());
      ops::cuda::gelu_backward(ctx.input_grad(0).data<float>(), x.data<float>(), ctx.grad_output().data<float>(),
                               x.numel(), cuda.stream());
#endif
      return;
    }
    ops::cpu::gelu_backward(ctx.input_grad(0).data<float>(), x.data<float>(), ctx.grad_output().data<float>(),
                            x.numel());
  });
  return out;
}

}  // namespace meridian::fn

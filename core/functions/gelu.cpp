#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/gelu.h"

namespace meridian::fn {

Tensor gelu(const Tensor& x) {
  profiler::Scope scope("gelu", "forward");
  detail::require_f32_cpu(x, "gelu", "input");
  Tensor out = Tensor::empty(x.shape());
  ops::cpu::gelu_forward(out.data<float>(), x.data<float>(), x.numel());
  autograd::record("gelu", {x}, out, [x](autograd::BackwardContext& ctx) {
    ops::cpu::gelu_backward(ctx.input_grad(0).data<float>(), x.data<float>(), ctx.grad_output().data<float>(),
                            x.numel());
  });
  return out;
}

}  // namespace meridian::fn

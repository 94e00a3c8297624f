#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/attention.h"

namespace meridian::fn {

Tensor causal_self_attention(const Tensor& qkv, int64_t num_heads) {
  profiler::Scope scope("attention", "forward");
  detail::require_f32_cpu(qkv, "causal_self_attention", "qkv");
  detail::require_ndim(qkv, 3, "causal_self_attention", "qkv");
  const int64_t B = qkv.dim(0), T = qkv.dim(1), C3 = qkv.dim(2);
  if (C3 % 3 != 0) MERIDIAN_FAIL("causal_self_attention: qkv of shape ", shape_str(qkv.shape()), " is not 3·C wide");
  const int64_t C = C3 / 3;
  if (num_heads <= 0 || C % num_heads != 0)
    MERIDIAN_FAIL("causal_self_attention: ", num_heads, " heads do not divide ", C, " channels");
  Tensor out = Tensor::empty({B, T, C});
  Tensor lse = Tensor::empty({B, num_heads, T});
  ops::cpu::attention_forward(out.data<float>(), lse.data<float>(), qkv.data<float>(), B, T, C, num_heads);
  autograd::record("attention", {qkv}, out,
                   [qkv, saved_out = out.detach(), lse, B, T, C, num_heads](autograd::BackwardContext& ctx) {
                     ops::cpu::attention_backward(ctx.input_grad(0).data<float>(), ctx.grad_output().data<float>(),
                                                  qkv.data<float>(), saved_out.data<float>(), lse.data<float>(), B,
                                                  T, C, num_heads);
                   });
  return out;
}

}  // namespace meridian::fn

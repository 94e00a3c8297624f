#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/attention.h"

#if MERIDIAN_CUDA
#include "ops/cuda/attention.h"
#endif

namespace meridian::fn {

Tensor causal_self_attention(const Tensor& qkv, int64_t num_heads) {
  profiler::Scope scope("attention", "forward");
  detail::require_f32(qkv, "causal_self_attention", "qkv");
  detail::require_ndim(qkv, 3, "causal_self_attention", "qkv");
  const int64_t B = qkv.dim(0), T = qkv.dim(1), C3 = qkv.dim(2);
  if (C3 % 3 != 0) MERIDIAN_FAIL("causal_self_attention: qkv of shape ", shape_str(qkv.shape()), " is not 3·C wide");
  const int64_t C = C3 / 3;
  if (num_heads <= 0 || C % num_heads != 0)
    MERIDIAN_FAIL("causal_self_attention: ", num_heads, " heads do not divide ", C, " channels");
  const Device device = qkv.device();
  Tensor out = Tensor::empty({B, T, C}, DType::f32, device);
  Tensor lse = Tensor::empty({B, num_heads, T}, DType::f32, device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    if (C / num_heads > ops::cuda::kAttentionMaxHeadSize)
      MERIDIAN_FAIL("causal_self_attention: head size ", C / num_heads, " on ", device.to_string(),
                    " exceeds the CUDA kernel's maximum of ", ops::cuda::kAttentionMaxHeadSize);
    const detail::CudaScope cuda(device);
    ops::cuda::attention_forward(out.data<float>(), lse.data<float>(), qkv.data<float>(), B, T, C, num_heads,
                                 cuda.stream());
#endif
  } else {
    ops::cpu::attention_forward(out.data<float>(), lse.data<float>(), qkv.data<float>(), B, T, C, num_heads);
  }
  autograd::record("attention", {qkv}, out,
                   [qkv, saved_out = out.detach(), lse, B, T, C, num_heads](autograd::BackwardContext& ctx) {
                     if (qkv.device().is_cuda()) {
#if MERIDIAN_CUDA
                       const detail::CudaScope cuda(qkv.device());
                       ops::cuda::attention_backward(ctx.input_grad(0).data<float>(), ctx.grad_output().data<float>(),
                                                     qkv.data<float>(), saved_out.data<float>(), lse.data<float>(),
                                                     B, T, C, num_heads, cuda.stream());
#endif
                       return;
                     }
                     ops::cpu::attention_backward(ctx.input_grad(0).data<float>(), ctx.grad_output().data<float>(),
                                                  qkv.data<float>(), saved_out.data<float>(), lse.data<float>(), B,
                                                  T, C, num_heads);
                   });
  return out;
}

}  // namespace meridian::fn

#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/layernorm.h"

#if MERIDIAN_CUDA
#include "ops/cuda/layernorm.h"
#endif

namespace meridian::fn {

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  profiler::Scope scope("layer_norm", "forward");
  detail::require_f32(x, "layer_norm", "input");
  detail::require_f32(weight, "layer_norm", "weight");
  detail::require_f32(bias, "layer_norm", "bias");
  const Device device =
      detail::require_same_device("layer_norm", {{"input", &x}, {"weight", &weight}, {"bias", &bias}});
  const int64_t channels = x.ndim() ? x.dim(-1) : 0;
  if (channels == 0 || weight.shape() != Shape{channels} || bias.shape() != Shape{channels})
    MERIDIAN_FAIL("layer_norm: input ", shape_str(x.shape()), " needs weight and bias of shape [", channels,
                  "], got ", shape_str(weight.shape()), " and ", shape_str(bias.shape()));
  const int64_t rows = x.numel() / channels;
  Tensor out = Tensor::empty(x.shape(), DType::f32, device);
  Tensor mean = Tensor::empty({rows}, DType::f32, device);
  Tensor rstd = Tensor::empty({rows}, DType::f32, device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    ops::cuda::layernorm_forward(out.data<float>(), mean.data<float>(), rstd.data<float>(), x.data<float>(),
                                 weight.data<float>(), bias.data<float>(), rows, channels, eps, cuda.stream());
#endif
  } else {
    ops::cpu::layernorm_forward(out.data<float>(), mean.data<float>(), rstd.data<float>(), x.data<float>(),
                                weight.data<float>(), bias.data<float>(), rows, channels, eps);
  }
  autograd::record("layer_norm", {x, weight, bias}, out,
                   [x, weight, mean, rstd, rows, channels](autograd::BackwardContext& ctx) {
                     if (x.device().is_cuda()) {
#if MERIDIAN_CUDA
                       const detail::CudaScope cuda(x.device());
                       ops::cuda::layernorm_backward(
                           detail::grad_or_null(ctx, 0), detail::grad_or_null(ctx, 1), detail::grad_or_null(ctx, 2),
                           ctx.grad_output().data<float>(), x.data<float>(), weight.data<float>(),
                           mean.data<float>(), rstd.data<float>(), rows, channels, cuda.stream());
#endif
                       return;
                     }
                     ops::cpu::layernorm_backward(
                         detail::grad_or_null(ctx, 0), detail::grad_or_null(ctx, 1), detail::grad_or_null(ctx, 2),
                         ctx.grad_output().data<float>(), x.data<float>(), weight.data<float>(),
                         mean.data<float>(), rstd.data<float>(), rows, channels);
                   });
  return out;
}

}  // namespace meridian::fn

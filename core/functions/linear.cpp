#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/matmul.h"

namespace meridian::fn {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  profiler::Scope scope("linear", "forward");
  detail::require_f32_cpu(x, "linear", "input");
  detail::require_f32_cpu(weight, "linear", "weight");
  detail::require_ndim(weight, 2, "linear", "weight");
  const int64_t in_features = weight.dim(1);
  const int64_t out_features = weight.dim(0);
  if (x.ndim() < 1 || x.dim(-1) != in_features)
    MERIDIAN_FAIL("linear: input of shape ", shape_str(x.shape()), " does not end in ", in_features,
                  " (weight '", weight.name(), "' has shape ", shape_str(weight.shape()), ")");
  if (bias.defined()) {
    detail::require_f32_cpu(bias, "linear", "bias");
    if (bias.shape() != Shape{out_features})
      MERIDIAN_FAIL("linear: bias of shape ", shape_str(bias.shape()), " for ", out_features, " outputs");
  }
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = Tensor::empty(out_shape);
  const int64_t rows = x.numel() / std::max<int64_t>(in_features, 1);
  ops::cpu::matmul_forward(out.data<float>(), x.data<float>(), weight.data<float>(),
                           bias.defined() ? bias.data<float>() : nullptr, rows, in_features, out_features);
  autograd::record("linear", {x, weight, bias}, out,
                   [x, weight, rows, in_features, out_features](autograd::BackwardContext& ctx) {
                     ops::cpu::matmul_backward(detail::grad_or_null(ctx, 0), detail::grad_or_null(ctx, 1),
                                               detail::grad_or_null(ctx, 2), ctx.grad_output().data<float>(),
                                               x.data<float>(), weight.data<float>(), rows, in_features,
                                               out_features);
                   });
  return out;
}

}  // namespace meridian::fn

#include <vector>

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/cross_entropy.h"

#if MERIDIAN_CUDA
#include "ops/cuda/cross_entropy.h"
#include "ops/cuda/elementwise.h"
#endif

namespace meridian::fn {

// On cuda the per-row losses come from the kernel and the mean is taken on the host, in double and
// in the cpu's order (one copy of N floats back; the loss is read every step anyway). The targets are
// checked on the host too, as on the cpu (a copy of N ints): the kernel cannot throw for a target
// outside the vocabulary. Backward reads the one-element output gradient back to form dlosses.
//
// When cuda logits will need a gradient (training), the forward pass is llm.c's fused classifier:
// one kernel writes the losses and the whole gradient for an upstream gradient of 1 (dlosses =
// 1/count), and the logits need not be kept. Backward then hands that gradient over to the engine
// (no zero-fill, no second pass over the logits) when the upstream gradient is 1, and adds
// upstream · gradient otherwise (gradient accumulation's scaled losses).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t vocab_size) {
  profiler::Scope scope("cross_entropy", "forward");
  detail::require_float(logits, "cross_entropy", "logits");
  detail::require_i32(targets, "cross_entropy", "targets");
  const Device device = detail::require_same_device("cross_entropy", {{"logits", &logits}, {"targets", &targets}});
  const int64_t padded = logits.ndim() ? logits.dim(-1) : 0;
  Shape leading(logits.shape().begin(), logits.shape().end() - (logits.ndim() ? 1 : 0));
  if (targets.shape() != leading)
    MERIDIAN_FAIL("cross_entropy: targets of shape ", shape_str(targets.shape()), " for logits of shape ",
                  shape_str(logits.shape()));
  if (vocab_size <= 0 || vocab_size > padded)
    MERIDIAN_FAIL("cross_entropy: vocabulary of ", vocab_size, " for logits ", padded, " wide");
  const int64_t rows = targets.numel();
  const Tensor host_targets = device.is_cuda() ? targets.to(Device::cpu()) : targets;
  const int32_t* target = host_targets.data<int32_t>();
  int64_t counted = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (target[i] >= vocab_size)
      MERIDIAN_FAIL("cross_entropy: target ", target[i], " at position ", i, " is outside the vocabulary of ",
                    vocab_size);
    counted += target[i] >= 0;
  }
  Tensor losses = Tensor::empty({rows}, DType::f32, device);
  Tensor lse = Tensor::empty({rows}, DType::f32, device);
  const bool fused = device.is_cuda() && autograd::GradMode::is_enabled() && logits.requires_grad();
  Tensor gradient;  // fused: the gradient of the logits for an upstream gradient of 1
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    Tensor dlosses;
    if (fused) {
      gradient = Tensor::empty(logits.shape(), logits.dtype(), device);
      dlosses = Tensor::empty({rows}, DType::f32, device);
      dlosses.fill_(counted ? 1.0f / static_cast<float>(counted) : 0.0f);
    }
    const detail::CudaScope cuda(device);
    detail::dispatch_float(logits.dtype(), [&]<class E>() {
      if (fused) {
        ops::cuda::fused_classifier(losses.data<float>(), lse.data<float>(), detail::element_ptr<E>(gradient),
                                    dlosses.data<float>(), detail::element_ptr<E>(logits), targets.data<int32_t>(),
                                    rows, vocab_size, padded, cuda.stream(), /*overwrite=*/true);
      } else {
        ops::cuda::cross_entropy_forward(losses.data<float>(), lse.data<float>(), detail::element_ptr<E>(logits),
                                         targets.data<int32_t>(), rows, vocab_size, padded, cuda.stream());
      }
    });
#endif
  } else {
    const detail::FloatView x(logits, detail::FloatView::Access::read);
    ops::cpu::cross_entropy_forward(losses.data<float>(), lse.data<float>(), x.data(), target, rows, vocab_size,
                                    padded);
  }
  const Tensor host_losses = losses.to(Device::cpu());  // the same tensor on the cpu
  double total = 0.0;
  for (int64_t i = 0; i < rows; ++i) total += host_losses.data<float>()[i];
  Tensor out = Tensor::empty({});
  out.data<float>()[0] = counted ? static_cast<float>(total / static_cast<double>(counted)) : 0.0f;
  out = out.to(device);
  if (fused) {
    autograd::record("cross_entropy", {logits, targets}, out, [gradient](autograd::BackwardContext& ctx) {
#if MERIDIAN_CUDA
      const float upstream = ctx.grad_output().item<float>();
      if (upstream == 1.0f && ctx.hand_over_input_grad(0, gradient)) return;
      const Tensor into = ctx.input_grad(0);
      const detail::CudaScope cuda(gradient.device());
      detail::dispatch_float(gradient.dtype(), [&]<class E>() {
        ops::cuda::axpy(detail::element_ptr<E>(into), detail::element_ptr<E>(gradient), upstream, gradient.numel(),
                        cuda.stream());
      });
#else
      (void)ctx;
#endif
    });
    return out;
  }
  autograd::record("cross_entropy", {logits, targets}, out,
                   [logits, targets, lse, rows, vocab_size, padded, counted](autograd::BackwardContext& ctx) {
                     if (logits.device().is_cuda()) {
#if MERIDIAN_CUDA
                       const float weight =
                           counted ? ctx.grad_output().item<float>() / static_cast<float>(counted) : 0.0f;
                       Tensor dlosses = Tensor::empty({rows}, DType::f32, logits.device());
                       dlosses.fill_(weight);
                       const detail::CudaScope cuda(logits.device());
                       const Tensor dlogits = ctx.input_grad(0);
                       detail::dispatch_float(logits.dtype(), [&]<class E>() {
                         ops::cuda::cross_entropy_backward(detail::element_ptr<E>(dlogits), dlosses.data<float>(),
                                                           detail::element_ptr<E>(logits), lse.data<float>(),
                                                           targets.data<int32_t>(), rows, vocab_size, padded,
                                                           cuda.stream());
                       });
#endif
                       return;
                     }
                     const float weight = counted ? ctx.grad_output().data<float>()[0] / static_cast<float>(counted) : 0.0f;
                     std::vector<float> dlosses(static_cast<size_t>(rows), weight);
                     using Access = detail::FloatView::Access;
                     const detail::FloatView g(ctx.input_grad(0), Access::accumulate), x(logits, Access::read);
                     ops::cpu::cross_entropy_backward(g.data(), dlosses.data(), x.data(), lse.data<float>(),
                                                      targets.data<int32_t>(), rows, vocab_size, padded);
                   });
  return out;
}

}  // namespace meridian::fn

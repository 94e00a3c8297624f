#include <algorithm>
#include <vector>

#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/elementwise.h"
#include "ops/cpu/optimizer.h"

#if MERIDIAN_CUDA
#include "ops/cuda/elementwise.h"
#endif

namespace meridian::fn {

namespace {

// dst += alpha · src (n floats) on the device both live on.
void axpy_on(Device device, float* dst, const float* src, float alpha, int64_t n) {
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    ops::cuda::axpy(dst, src, alpha, n, cuda.stream());
#endif
    return;
  }
  ops::cpu::axpy(dst, src, alpha, n);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  profiler::Scope scope("add", "forward");
  detail::require_f32(a, "add", "a");
  detail::require_f32(b, "add", "b");
  const Device device = detail::require_same_device("add", {{"a", &a}, {"b", &b}});
  const Shape& as = a.shape();
  const Shape& bs = b.shape();
  if (bs.size() > as.size() || !std::equal(bs.rbegin(), bs.rend(), as.rbegin()))
    MERIDIAN_FAIL("add: shape ", shape_str(bs), " is neither equal to nor a suffix of ", shape_str(as));
  const int64_t inner = b.numel();
  const int64_t repeats = inner == 0 ? 0 : a.numel() / inner;
  Tensor out = Tensor::empty(as, DType::f32, device);
  float* o = out.data<float>();
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    // One launch per repeat of b, as the cpu loop: a broadcast add is a position embedding (B
    // repeats) in the training step, so the launch count stays small.
    const detail::CudaScope cuda(device);
    for (int64_t r = 0; r < repeats; ++r)
      ops::cuda::add_forward(o + r * inner, a.data<float>() + r * inner, b.data<float>(), inner, cuda.stream());
#endif
  } else {
    for (int64_t r = 0; r < repeats; ++r)
      ops::cpu::add_forward(o + r * inner, a.data<float>() + r * inner, b.data<float>(), inner);
  }
  autograd::record("add", {a, b}, out, [device, inner, repeats](autograd::BackwardContext& ctx) {
    const float* dout = ctx.grad_output().data<float>();
    if (ctx.needs_input_grad(0)) axpy_on(device, ctx.input_grad(0).data<float>(), dout, 1.0f, inner * repeats);
    if (ctx.needs_input_grad(1)) {
      float* db = ctx.input_grad(1).data<float>();
      for (int64_t r = 0; r < repeats; ++r) axpy_on(device, db, dout + r * inner, 1.0f, inner);
    }
  });
  return out;
}

Tensor scale(const Tensor& x, float alpha) {
  detail::require_f32(x, "scale", "input");
  const Device device = x.device();
  Tensor out = Tensor::empty(x.shape(), DType::f32, device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    ops::cuda::scaled_copy(out.data<float>(), x.data<float>(), alpha, x.numel(), cuda.stream());
#endif
  } else {
    ops::cpu::scaled_copy(out.data<float>(), x.data<float>(), alpha, x.numel());
  }
  autograd::record("scale", {x}, out, [device, alpha, n = x.numel()](autograd::BackwardContext& ctx) {
    axpy_on(device, ctx.input_grad(0).data<float>(), ctx.grad_output().data<float>(), alpha, n);
  });
  return out;
}

// On cuda the sum goes through the host (there is no reduction kernel for it; the training step does
// not use it): the values are copied back, summed in double in the cpu's order, and the result copied
// to the device, so both devices give the same bits. Backward reads the one-element gradient back.
Tensor sum(const Tensor& x) {
  detail::require_f32(x, "sum", "input");
  const Device device = x.device();
  double total = 0.0;
  if (device.is_cuda()) {
    const std::vector<float> values = x.to_float_vector();
    for (float value : values) total += value;
  } else {
    const float* values = x.data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) total += values[i];
  }
  Tensor out = Tensor::empty({});
  out.data<float>()[0] = static_cast<float>(total);
  out = out.to(device);  // the same tensor on the cpu
  autograd::record("sum", {x}, out, [device, n = x.numel()](autograd::BackwardContext& ctx) {
    if (device.is_cuda()) {
      const float dout = ctx.grad_output().item<float>();
      Tensor filled = Tensor::empty({n}, DType::f32, device);
      filled.fill_(dout);
      axpy_on(device, ctx.input_grad(0).data<float>(), filled.data<float>(), 1.0f, n);
      return;
    }
    const float dout = ctx.grad_output().data<float>()[0];
    float* dx = ctx.input_grad(0).data<float>();
    for (int64_t i = 0; i < n; ++i) dx[i] += dout;
  });
  return out;
}

}  // namespace meridian::fn

#include <algorithm>
#include <vector>

#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/functions/functions.h"
#include "core/gradient_accumulation.h"
#include "core/profiler.h"
#include "ops/cpu/elementwise.h"

#if MERIDIAN_CUDA
#include "ops/cuda/elementwise.h"
#endif

namespace meridian::fn {

namespace {

using Access = detail::FloatView::Access;

// Both cases of the add backward and scale's: dst += alpha · src over n elements, on the device
// both live on, in their (shared) dtype.
void axpy_on(const Tensor& dst, int64_t dst_offset, const Tensor& src, int64_t src_offset, float alpha, int64_t n) {
  if (dst.device().is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(dst.device());
    detail::dispatch_float(dst.dtype(), [&]<class E>() {
      ops::cuda::axpy(detail::element_ptr<E>(dst, dst_offset), detail::element_ptr<E>(src, src_offset), alpha, n,
                      cuda.stream());
    });
#endif
    return;
  }
  const detail::FloatView d(dst, Access::accumulate), s(src, Access::read);
  ops::cpu::axpy(d.data() + dst_offset, s.data() + src_offset, alpha, n);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  profiler::Scope scope("add", "forward");
  detail::require_float(a, "add", "a");
  detail::require_float(b, "add", "b");
  detail::require_dtype(b, a.dtype(), "add", "b");
  const Device device = detail::require_same_device("add", {{"a", &a}, {"b", &b}});
  const Shape& as = a.shape();
  const Shape& bs = b.shape();
  if (bs.size() > as.size() || !std::equal(bs.rbegin(), bs.rend(), as.rbegin()))
    MERIDIAN_FAIL("add: shape ", shape_str(bs), " is neither equal to nor a suffix of ", shape_str(as));
  const int64_t inner = b.numel();
  const int64_t repeats = inner == 0 ? 0 : a.numel() / inner;
  Tensor out = Tensor::empty(as, a.dtype(), device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    // One launch per repeat of b, as the cpu loop: a broadcast add is a position embedding (B
    // repeats) in the training step, so the launch count stays small.
    const detail::CudaScope cuda(device);
    detail::dispatch_float(a.dtype(), [&]<class E>() {
      for (int64_t r = 0; r < repeats; ++r)
        ops::cuda::add_forward(detail::element_ptr<E>(out, r * inner), detail::element_ptr<E>(a, r * inner),
                               detail::element_ptr<E>(b), inner, cuda.stream());
    });
#endif
  } else {
    const detail::FloatView o(out, Access::overwrite), x(a, Access::read), y(b, Access::read);
    for (int64_t r = 0; r < repeats; ++r) ops::cpu::add_forward(o.data() + r * inner, x.data() + r * inner, y.data(), inner);
  }
  autograd::record("add", {a, b}, out, [inner, repeats, b_shape = bs](autograd::BackwardContext& ctx) {
    const Tensor dout = ctx.grad_output();
    const bool on_cuda = dout.device().is_cuda();
    // On a GPU the residual stream's gradient passes on without copies where it can: a's gradient and
    // b's (same shape) are both dout itself, handed over when nothing was accumulated for them yet
    // (the engine copies it for whichever input another consumer adds to while both still hold it).
    // Otherwise they accumulate, as on the cpu.
    if (ctx.needs_input_grad(0) && !(on_cuda && ctx.hand_over_input_grad(0, dout)))
      axpy_on(ctx.input_grad(0), 0, dout, 0, 1.0f, inner * repeats);
    // dout may have leading 1s (one repeat).
    if (ctx.needs_input_grad(1) && on_cuda && repeats == 1 &&
        ctx.hand_over_input_grad(1, dout.contiguous().view(b_shape)))
      return;
    if (ctx.needs_input_grad(1)) {
      const Tensor db = ctx.input_grad(1);
      if (db.device().is_cuda()) {
        for (int64_t r = 0; r < repeats; ++r) axpy_on(db, 0, dout, r * inner, 1.0f, inner);
      } else {
        // One widened view for all repeats (a bf16 db is then rounded once, not once per repeat).
        const detail::FloatView d(db, Access::accumulate), g(dout, Access::read);
        for (int64_t r = 0; r < repeats; ++r) ops::cpu::axpy(d.data(), g.data() + r * inner, 1.0f, inner);
      }
    }
  });
  return out;
}

Tensor scale(const Tensor& x, float alpha) {
  detail::require_float(x, "scale", "input");
  const Device device = x.device();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    detail::dispatch_float(x.dtype(), [&]<class E>() {
      ops::cuda::scaled_copy(detail::element_ptr<E>(out), detail::element_ptr<E>(x), alpha, x.numel(), cuda.stream());
    });
#endif
  } else {
    const detail::FloatView o(out, Access::overwrite), in(x, Access::read);
    ops::cpu::scaled_copy(o.data(), in.data(), alpha, x.numel());
  }
  autograd::record("scale", {x}, out, [alpha, n = x.numel()](autograd::BackwardContext& ctx) {
    axpy_on(ctx.input_grad(0), 0, ctx.grad_output(), 0, alpha, n);
  });
  return out;
}

Tensor cast(const Tensor& x, DType dtype) {
  detail::require_float(x, "cast", "input");
  if (dtype != DType::f32 && dtype != DType::bf16)
    MERIDIAN_FAIL("cast: to ", dtype_name(dtype), ": only f32 and bf16 are compute dtypes");
  if (x.dtype() == dtype) return x;
  Tensor out = x.detach().to(dtype);
  autograd::record("cast", {x}, out, [](autograd::BackwardContext& ctx) {
    ::meridian::detail::accumulate_gradient(ctx.input_grad(0), ctx.grad_output());
  });
  return out;
}

// On cuda the sum goes through the host (there is no reduction kernel for it; the training step does
// not use it): the values are copied back, summed in double in the cpu's order, and the result copied
// to the device, so both devices give the same bits. Backward reads the one-element gradient back.
Tensor sum(const Tensor& x) {
  detail::require_float(x, "sum", "input");
  const Device device = x.device();
  double total = 0.0;
  if (device.is_cuda()) {
    const std::vector<float> values = x.to_float_vector();
    for (float value : values) total += value;
  } else {
    const detail::FloatView values(x, Access::read);
    for (int64_t i = 0; i < x.numel(); ++i) total += values.data()[i];
  }
  Tensor out = Tensor::empty({});
  out.data<float>()[0] = static_cast<float>(total);
  out = out.to(device);  // the same tensor on the cpu
  autograd::record("sum", {x}, out, [device, n = x.numel()](autograd::BackwardContext& ctx) {
    if (device.is_cuda()) {
      const float dout = ctx.grad_output().item<float>();
      Tensor filled = Tensor::empty({n}, DType::f32, device);
      filled.fill_(dout);
      ::meridian::detail::accumulate_gradient(ctx.input_grad(0), filled);
      return;
    }
    const float dout = ctx.grad_output().data<float>()[0];
    const detail::FloatView dx(ctx.input_grad(0), Access::accumulate);
    for (int64_t i = 0; i < n; ++i) dx.data()[i] += dout;
  });
  return out;
}

}  // namespace meridian::fn

#include <algorithm>

#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/elementwise.h"
#include "ops/cpu/optimizer.h"

namespace meridian::fn {

Tensor add(const Tensor& a, const Tensor& b) {
  profiler::Scope scope("add", "forward");
  detail::require_f32_cpu(a, "add", "a");
  detail::require_f32_cpu(b, "add", "b");
  const Shape& as = a.shape();
  const Shape& bs = b.shape();
  if (bs.size() > as.size() || !std::equal(bs.rbegin(), bs.rend(), as.rbegin()))
    MERIDIAN_FAIL("add: shape ", shape_str(bs), " is neither equal to nor a suffix of ", shape_str(as));
  const int64_t inner = b.numel();
  const int64_t repeats = inner == 0 ? 0 : a.numel() / inner;
  Tensor out = Tensor::empty(as);
  float* o = out.data<float>();
  for (int64_t r = 0; r < repeats; ++r)
    ops::cpu::add_forward(o + r * inner, a.data<float>() + r * inner, b.data<float>(), inner);
  autograd::record("add", {a, b}, out, [inner, repeats](autograd::BackwardContext& ctx) {
    const float* dout = ctx.grad_output().data<float>();
    if (ctx.needs_input_grad(0)) ops::cpu::axpy(ctx.input_grad(0).data<float>(), dout, 1.0f, inner * repeats);
    if (ctx.needs_input_grad(1)) {
      float* db = ctx.input_grad(1).data<float>();
      for (int64_t r = 0; r < repeats; ++r) ops::cpu::axpy(db, dout + r * inner, 1.0f, inner);
    }
  });
  return out;
}

Tensor scale(const Tensor& x, float alpha) {
  detail::require_f32_cpu(x, "scale", "input");
  Tensor out = Tensor::empty(x.shape());
  ops::cpu::scaled_copy(out.data<float>(), x.data<float>(), alpha, x.numel());
  autograd::record("scale", {x}, out, [alpha, n = x.numel()](autograd::BackwardContext& ctx) {
    ops::cpu::axpy(ctx.input_grad(0).data<float>(), ctx.grad_output().data<float>(), alpha, n);
  });
  return out;
}

Tensor sum(const Tensor& x) {
  detail::require_f32_cpu(x, "sum", "input");
  Tensor out = Tensor::empty({});
  double total = 0.0;
  const float* values = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) total += values[i];
  out.data<float>()[0] = static_cast<float>(total);
  autograd::record("sum", {x}, out, [n = x.numel()](autograd::BackwardContext& ctx) {
    const float dout = ctx.grad_output().data<float>()[0];
    float* dx = ctx.input_grad(0).data<float>();
    for (int64_t i = 0; i < n; ++i) dx[i] += dout;
  });
  return out;
}

}  // namespace meridian::fn

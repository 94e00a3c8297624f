#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/functions/functions.h"
#include "core/functions/working_copies.h"
#include "core/gradient_accumulation.h"
#include "core/profiler.h"
#include "ops/cpu/layernorm.h"

#if MERIDIAN_CUDA
#include "ops/cuda/layernorm.h"
#endif

namespace meridian::fn {

namespace {

using Access = detail::FloatView::Access;

struct Saved {
  Tensor x, weight, mean, rstd;  // weight in the compute dtype (x's)
  int64_t rows, channels;
};

#if MERIDIAN_CUDA
// The cuda kernel writes parameter gradients in fp32 (any activation dtype) or in the compute dtype.
// fp32 gradients (the masters' under bf16 included) take its fp32 sums directly; a gradient of another
// dtype goes through a zeroed compute-dtype buffer that is then added to it.
bool fp32_gradients(const Tensor& dweight, const Tensor& dbias) {
  return (!dweight.defined() || dweight.dtype() == DType::f32) && (!dbias.defined() || dbias.dtype() == DType::f32);
}

Tensor in_compute_dtype(const Tensor& grad, DType dtype) {
  if (!grad.defined() || grad.dtype() == dtype) return grad;
  return Tensor::zeros(grad.shape(), dtype, grad.device());
}

void backward_on_cuda(const Saved& s, const autograd::BackwardContext::GradientTarget& dinp, const Tensor& dweight,
                      const Tensor& dbias, const Tensor& dout) {
  const DType dtype = s.x.dtype();
  const bool fp32 = fp32_gradients(dweight, dbias);
  const Tensor dw = fp32 ? dweight : in_compute_dtype(dweight, dtype);
  const Tensor db = fp32 ? dbias : in_compute_dtype(dbias, dtype);
  // The parameter gradients' row-split partials (fp32), from the caching allocator.
  const Tensor scratch = dw.defined() || db.defined()
                             ? Tensor::empty({static_cast<int64_t>(
                                                 ops::cuda::layernorm_backward_scratch_bytes(s.rows, s.channels) / 4)},
                                             DType::f32, s.x.device())
                             : Tensor();
  {
    const detail::CudaScope cuda(s.x.device());
    detail::dispatch_float(dtype, [&]<class E>() {
      const auto run = [&]<class G>(G* weight_grad, G* bias_grad) {
        ops::cuda::layernorm_backward(detail::element_ptr<E>(dinp.tensor), weight_grad, bias_grad,
                                      detail::element_ptr<E>(dout), detail::element_ptr<E>(s.x),
                                      detail::element_ptr<E>(s.weight), detail::element_ptr<float>(s.mean),
                                      detail::element_ptr<float>(s.rstd), s.rows, s.channels, cuda.stream(),
                                      dinp.overwrite, scratch.defined() ? scratch.raw_data() : nullptr);
      };
      if (fp32)
        run(detail::element_ptr<float>(dw), detail::element_ptr<float>(db));
      else
        run(detail::element_ptr<E>(dw), detail::element_ptr<E>(db));
    });
  }
  if (dw.defined() && !dw.same_impl(dweight)) ::meridian::detail::accumulate_gradient(dweight, dw);
  if (db.defined() && !db.same_impl(dbias)) ::meridian::detail::accumulate_gradient(dbias, db);
}
#endif

}  // namespace

// The compute dtype is the input's; weight and bias of another dtype (fp32 master weights under
// bf16) are converted for the kernel and their gradients accumulated in their own dtype.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  profiler::Scope scope("layer_norm", "forward");
  detail::require_float(x, "layer_norm", "input");
  detail::require_float(weight, "layer_norm", "weight");
  detail::require_float(bias, "layer_norm", "bias");
  detail::require_dtype(bias, weight.dtype(), "layer_norm", "bias");
  const Device device =
      detail::require_same_device("layer_norm", {{"input", &x}, {"weight", &weight}, {"bias", &bias}});
  const int64_t channels = x.ndim() ? x.dim(-1) : 0;
  if (channels == 0 || weight.shape() != Shape{channels} || bias.shape() != Shape{channels})
    MERIDIAN_FAIL("layer_norm: input ", shape_str(x.shape()), " needs weight and bias of shape [", channels,
                  "], got ", shape_str(weight.shape()), " and ", shape_str(bias.shape()));
  const DType dtype = x.dtype();
  const int64_t rows = x.numel() / channels;
  const Saved saved{x, detail::working_copy(weight, dtype), Tensor::empty({rows}, DType::f32, device),
                    Tensor::empty({rows}, DType::f32, device), rows, channels};
  const Tensor compute_bias = detail::working_copy(bias, dtype);
  Tensor out = Tensor::empty(x.shape(), dtype, device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    detail::dispatch_float(dtype, [&]<class E>() {
      ops::cuda::layernorm_forward(detail::element_ptr<E>(out), saved.mean.data<float>(), saved.rstd.data<float>(),
                                   detail::element_ptr<E>(x), detail::element_ptr<E>(saved.weight),
                                   detail::element_ptr<E>(compute_bias), rows, channels, eps, cuda.stream());
    });
#endif
  } else {
    const detail::FloatView o(out, Access::overwrite), in(x, Access::read), w(saved.weight, Access::read),
        b(compute_bias, Access::read);
    ops::cpu::layernorm_forward(o.data(), saved.mean.data<float>(), saved.rstd.data<float>(), in.data(), w.data(),
                                b.data(), rows, channels, eps);
  }
  autograd::record("layer_norm", {x, weight, bias}, out, [saved](autograd::BackwardContext& ctx) {
    const Tensor dweight = detail::grad_or_undefined(ctx, 1), dbias = detail::grad_or_undefined(ctx, 2),
                 dout = ctx.grad_output();
    if (saved.x.device().is_cuda()) {
#if MERIDIAN_CUDA
      backward_on_cuda(saved, detail::target_or_undefined(ctx, 0), dweight, dbias, dout);
#endif
      return;
    }
    const Tensor dinp = detail::grad_or_undefined(ctx, 0);
    const detail::FloatView gx(dinp, Access::accumulate), gw(dweight, Access::accumulate),
        gb(dbias, Access::accumulate), d(dout, Access::read), in(saved.x, Access::read), w(saved.weight, Access::read);
    ops::cpu::layernorm_backward(gx.data(), gw.data(), gb.data(), d.data(), in.data(), w.data(),
                                 saved.mean.data<float>(), saved.rstd.data<float>(), saved.rows, saved.channels);
  });
  return out;
}

}  // namespace meridian::fn

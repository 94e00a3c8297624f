#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/attention.h"

#if MERIDIAN_CUDA
#include "ops/cuda/attention.h"
#include "ops/cuda/attention_tensor_core.h"
#include "ops/cuda/flash_attention.h"
#endif

#include <atomic>
#include <cstdint>

namespace meridian::fn {

namespace {
std::atomic<CudaBf16Attention> cuda_bf16_attention{CudaBf16Attention::flash};
}  // namespace

void set_cuda_bf16_attention(CudaBf16Attention kernel) { cuda_bf16_attention.store(kernel); }

#if MERIDIAN_CUDA
namespace {

// Scratch for one call, as bytes from the device's caching allocator (u16 elements: any 2-byte type).
Tensor scratch_bytes(size_t bytes, Device device) {
  return Tensor::empty({static_cast<int64_t>((bytes + 1) / 2)}, DType::u16, device);
}

// bf16 on a GPU: the per-head products on tensor cores (ops/cuda/attention_tensor_core.h), keeping
// the probabilities (B·NH·T·T bf16) for backward instead of the log-sum-exp.
Tensor tensor_core_attention(const Tensor& qkv, int64_t B, int64_t T, int64_t C, int64_t NH) {
  const Device device = qkv.device();
  Tensor out = Tensor::empty({B, T, C}, DType::bf16, device);
  Tensor probabilities = Tensor::empty({B * NH, T, T}, DType::bf16, device);
  {
    const Tensor scratch = scratch_bytes(ops::cuda::attention_tc_forward_scratch_bytes(B, T, C, NH), device);
    const detail::CudaScope cuda(device);
    ops::cuda::attention_tc_forward(detail::element_ptr<__nv_bfloat16>(out),
                                    detail::element_ptr<__nv_bfloat16>(probabilities),
                                    detail::element_ptr<__nv_bfloat16>(qkv), scratch.raw_data(), B, T, C, NH,
                                    cuda.stream());
  }
  autograd::record("attention", {qkv}, out, [qkv, probabilities, B, T, C, NH](autograd::BackwardContext& ctx) {
    const Tensor dqkv = ctx.input_grad(0), dout = ctx.grad_output();
    const Tensor scratch =
        scratch_bytes(ops::cuda::attention_tc_backward_scratch_bytes(B, T, C, NH), qkv.device());
    const detail::CudaScope cuda(qkv.device());
    ops::cuda::attention_tc_backward(detail::element_ptr<__nv_bfloat16>(dqkv), detail::element_ptr<__nv_bfloat16>(dout),
                                     detail::element_ptr<__nv_bfloat16>(qkv),
                                     detail::element_ptr<__nv_bfloat16>(probabilities), scratch.raw_data(), B, T, C,
                                     NH, cuda.stream());
  });
  return out;
}

// Whether bf16 attention on this device runs the tensor-core flash kernel: its head sizes, and qkv
// 16-byte aligned for its vector loads (a view at an odd offset takes the batched products instead).
bool runs_flash_kernel(const Tensor& qkv, int64_t head_size) {
  return qkv.device().is_cuda() && qkv.dtype() == DType::bf16 &&
         cuda_bf16_attention.load() == CudaBf16Attention::flash && ops::cuda::flash_attention_supports(head_size) &&
         reinterpret_cast<uintptr_t>(qkv.raw_data()) % 16 == 0;
}

// The log-sum-exp kernels on a GPU: tensor-core flash for bf16 (`flash`), else the CUDA-core one.
void cuda_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, bool flash, int64_t B,
                            int64_t T, int64_t C, int64_t NH) {
  if (C / NH > ops::cuda::kAttentionMaxHeadSize)
    MERIDIAN_FAIL("causal_self_attention: head size ", C / NH, " on ", qkv.device().to_string(),
                  " exceeds the CUDA kernel's maximum of ", ops::cuda::kAttentionMaxHeadSize);
  const detail::CudaScope cuda(qkv.device());
  if (flash) {
    ops::cuda::flash_attention_forward(detail::element_ptr<__nv_bfloat16>(out), lse.data<float>(),
                                       detail::element_ptr<__nv_bfloat16>(qkv), B, T, C, NH, cuda.stream());
    return;
  }
  detail::dispatch_float(qkv.dtype(), [&]<class E>() {
    ops::cuda::attention_forward(detail::element_ptr<E>(out), lse.data<float>(), detail::element_ptr<E>(qkv), B, T, C,
                                 NH, cuda.stream());
  });
}

// The flash kernel writes every element of dqkv, so it can fill a fresh gradient buffer
// (BackwardContext::gradient_target); the CUDA-core kernel accumulates.
void cuda_attention_backward(autograd::BackwardContext& ctx, const Tensor& dout, const Tensor& qkv, const Tensor& out,
                             const Tensor& lse, bool flash, int64_t B, int64_t T, int64_t C, int64_t NH) {
  if (flash) {
    // The kernel loads dout 16 bytes at a time: an upstream gradient at an odd offset is copied first.
    const Tensor aligned_dout = reinterpret_cast<uintptr_t>(dout.raw_data()) % 16 == 0 ? dout : dout.clone();
    const autograd::BackwardContext::GradientTarget dqkv = ctx.gradient_target(0);
    const Tensor scratch = scratch_bytes(ops::cuda::flash_attention_backward_scratch_bytes(B, T, NH), qkv.device());
    const detail::CudaScope cuda(qkv.device());
    ops::cuda::flash_attention_backward(
        detail::element_ptr<__nv_bfloat16>(dqkv.tensor), detail::element_ptr<__nv_bfloat16>(aligned_dout),
        detail::element_ptr<__nv_bfloat16>(qkv), detail::element_ptr<__nv_bfloat16>(out), lse.data<float>(),
        scratch.raw_data(), B, T, C, NH, cuda.stream(), dqkv.overwrite);
    return;
  }
  const Tensor dqkv = ctx.input_grad(0);
  const detail::CudaScope cuda(qkv.device());
  detail::dispatch_float(qkv.dtype(), [&]<class E>() {
    ops::cuda::attention_backward(detail::element_ptr<E>(dqkv), detail::element_ptr<E>(dout),
                                  detail::element_ptr<E>(qkv), detail::element_ptr<E>(out), lse.data<float>(), B, T, C,
                                  NH, cuda.stream());
  });
}

}  // namespace
#endif

// On a GPU, bf16 runs on tensor cores: the flash kernel (ops/cuda/flash_attention.h) where the head
// size allows, else the batched products that keep the probabilities; f32 runs the flash-style
// CUDA-core kernel, which matches the cpu to 1e-5 (docs/cuda.md).
Tensor causal_self_attention(const Tensor& qkv, int64_t num_heads) {
  profiler::Scope scope("attention", "forward");
  detail::require_float(qkv, "causal_self_attention", "qkv");
  detail::require_ndim(qkv, 3, "causal_self_attention", "qkv");
  const int64_t B = qkv.shape()[0], T = qkv.shape()[1], C3 = qkv.shape()[2];
  if (C3 % 3 != 0) MERIDIAN_FAIL("causal_self_attention: qkv of shape ", shape_str(qkv.shape()), " is not 3·C wide");
  const int64_t C = C3 / 3;
  if (num_heads <= 0 || C % num_heads != 0)
    MERIDIAN_FAIL("causal_self_attention: ", num_heads, " heads do not divide ", C, " channels");
  const Device device = qkv.device();
  bool flash = false;
#if MERIDIAN_CUDA
  flash = runs_flash_kernel(qkv, C / num_heads);
  if (device.is_cuda() && qkv.dtype() == DType::bf16 && !flash) return tensor_core_attention(qkv, B, T, C, num_heads);
#endif
  Tensor out = Tensor::empty({B, T, C}, qkv.dtype(), device);
  Tensor lse = Tensor::empty({B, num_heads, T}, DType::f32, device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    cuda_attention_forward(out, lse, qkv, flash, B, T, C, num_heads);
#endif
  } else {
    using Access = detail::FloatView::Access;
    const detail::FloatView o(out, Access::overwrite), in(qkv, Access::read);
    ops::cpu::attention_forward(o.data(), lse.data<float>(), in.data(), B, T, C, num_heads);
  }
  autograd::record("attention", {qkv}, out,
                   [qkv, saved_out = out.detach(), lse, flash, B, T, C, num_heads](autograd::BackwardContext& ctx) {
                     const Tensor dout = ctx.grad_output();
                     if (qkv.device().is_cuda()) {
#if MERIDIAN_CUDA
                       cuda_attention_backward(ctx, dout, qkv, saved_out, lse, flash, B, T, C, num_heads);
#endif
                       return;
                     }
                     const Tensor dqkv = ctx.input_grad(0);
                     using Access = detail::FloatView::Access;
                     const detail::FloatView g(dqkv, Access::accumulate), d(dout, Access::read),
                         in(qkv, Access::read), o(saved_out, Access::read);
                     ops::cpu::attention_backward(g.data(), d.data(), in.data(), o.data(), lse.data<float>(), B, T, C,
                                                  num_heads);
                   });
  return out;
}

}  // namespace meridian::fn

#pragma once
// Argument checks shared by the differentiable functions: each names the function and the argument.
#include <initializer_list>
#include <string_view>
#include <utility>

#include "core/autograd/node.h"
#include "core/cuda_dispatch.h"
#include "core/tensor.h"

namespace meridian::fn::detail {

#if MERIDIAN_CUDA
// So that `detail::CudaScope` reads the same inside meridian::fn (whose own `detail` hides
// meridian::detail).
using CudaScope = ::meridian::detail::CudaScope;
using ::meridian::detail::dispatch_float;
using ::meridian::detail::element_ptr;
#endif

// A defined, contiguous f32 tensor on the cpu (the only kind the cpu kernels take).
void require_f32_cpu(const Tensor& t, std::string_view function, std::string_view argument);
void require_i32_cpu(const Tensor& t, std::string_view function, std::string_view argument);
// The same on any device (cpu, or cuda where the function has a cuda path).
void require_f32(const Tensor& t, std::string_view function, std::string_view argument);
void require_i32(const Tensor& t, std::string_view function, std::string_view argument);
// A defined, contiguous f32 or bf16 tensor on any device: the element types the functions compute
// in (bf16 storage, fp32 arithmetic; see float_view.h for the cpu).
void require_float(const Tensor& t, std::string_view function, std::string_view argument);
// `t` has `dtype`, e.g. the activations one function combines share theirs.
void require_dtype(const Tensor& t, DType dtype, std::string_view function, std::string_view argument);
// All defined tensors of `arguments` (name, tensor) on one device; otherwise a meridian::Error naming
// the function and each argument's device. Returns that device.
Device require_same_device(std::string_view function,
                           std::initializer_list<std::pair<std::string_view, const Tensor*>> arguments);
void require_ndim(const Tensor& t, int ndim, std::string_view function, std::string_view argument);
// Raw gradient pointer for input `index`, or null when that input needs no gradient.
float* grad_or_null(autograd::BackwardContext& ctx, int index);
// The gradient buffer (the input's dtype) for input `index`, or an undefined tensor when that input
// needs no gradient.
Tensor grad_or_undefined(autograd::BackwardContext& ctx, int index);
// The same as a gradient target (BackwardContext::gradient_target): on cuda possibly a fresh buffer
// the kernel must overwrite; an undefined tensor when the input needs no gradient.
autograd::BackwardContext::GradientTarget target_or_undefined(autograd::BackwardContext& ctx, int index);

}  // namespace meridian::fn::detail

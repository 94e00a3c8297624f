#include "core/functions/checks.h"

#include <string>

#include "core/autograd/node.h"

namespace meridian::fn::detail {

namespace {
void require(const Tensor& t, DType dtype, std::string_view function, std::string_view argument, bool cpu_only = true) {
  if (!t.defined()) MERIDIAN_FAIL(function, ": ", argument, " is undefined");
  if (!cpu_only && t.dtype() != dtype)
    MERIDIAN_FAIL(function, ": ", argument, " must be ", dtype_name(dtype), ", got ", dtype_name(t.dtype()), " on ",
                  t.device().to_string(), " (shape ", shape_str(t.shape()), ")");
  if (cpu_only && (t.dtype() != dtype || !t.device().is_cpu()))
    MERIDIAN_FAIL(function, ": ", argument, " must be ", dtype_name(dtype), " on cpu, got ",
                  dtype_name(t.dtype()), " on ", t.device().to_string(), " (shape ", shape_str(t.shape()), ")");
  if (!t.is_contiguous())
    MERIDIAN_FAIL(function, ": ", argument, " of shape ", shape_str(t.shape()), " must be contiguous");
}
}  // namespace

void require_f32_cpu(const Tensor& t, std::string_view function, std::string_view argument) {
  require(t, DType::f32, function, argument);
}

void require_i32_cpu(const Tensor& t, std::string_view function, std::string_view argument) {
  require(t, DType::i32, function, argument);
}

void require_f32(const Tensor& t, std::string_view function, std::string_view argument) {
  require(t, DType::f32, function, argument, false);
}

void require_i32(const Tensor& t, std::string_view function, std::string_view argument) {
  require(t, DType::i32, function, argument, false);
}

void require_float(const Tensor& t, std::string_view function, std::string_view argument) {
  if (!t.defined()) MERIDIAN_FAIL(function, ": ", argument, " is undefined");
  if (t.dtype() != DType::f32 && t.dtype() != DType::bf16)
    MERIDIAN_FAIL(function, ": ", argument, " must be f32 or bf16, got ", dtype_name(t.dtype()), " on ",
                  t.device().to_string(), " (shape ", shape_str(t.shape()), ")");
  if (!t.is_contiguous())
    MERIDIAN_FAIL(function, ": ", argument, " of shape ", shape_str(t.shape()), " must be contiguous");
}

void require_dtype(const Tensor& t, DType dtype, std::string_view function, std::string_view argument) {
  if (t.dtype() != dtype)
    MERIDIAN_FAIL(function, ": ", argument, " is ", dtype_name(t.dtype()), " but the other inputs are ",
                  dtype_name(dtype), " (shape ", shape_str(t.shape()), "); convert with fn::cast");
}

Device require_same_device(std::string_view function,
                           std::initializer_list<std::pair<std::string_view, const Tensor*>> arguments) {
  const Tensor* first = nullptr;
  for (const auto& argument : arguments) {
    const Tensor* tensor = argument.second;
    if (!tensor->defined()) continue;
    if (!first) {
      first = tensor;
    } else if (tensor->device() != first->device()) {
      std::string listing;
      for (const auto& [other_name, other] : arguments)
        if (other->defined())
          listing += ::meridian::detail::concat(listing.empty() ? "" : ", ", other_name, " on ", other->device().to_string());
      MERIDIAN_FAIL(function, ": inputs are on different devices (", listing, "); move them to one device with .to()");
    }
  }
  MERIDIAN_CHECK(first != nullptr, function, ": no defined input");
  return first->device();
}

void require_ndim(const Tensor& t, int ndim, std::string_view function, std::string_view argument) {
  if (t.ndim() != ndim)
    MERIDIAN_FAIL(function, ": ", argument, " must have ", ndim, " dimensions, got shape ", shape_str(t.shape()));
}

float* grad_or_null(autograd::BackwardContext& ctx, int index) {
  return ctx.needs_input_grad(index) ? ctx.input_grad(index).data<float>() : nullptr;
}

Tensor grad_or_undefined(autograd::BackwardContext& ctx, int index) {
  return ctx.needs_input_grad(index) ? ctx.input_grad(index) : Tensor();
}

autograd::BackwardContext::GradientTarget target_or_undefined(autograd::BackwardContext& ctx, int index) {
  return ctx.needs_input_grad(index) ? ctx.gradient_target(index) : autograd::BackwardContext::GradientTarget{};
}

}  // namespace meridian::fn::detail

#pragma once
// Argument checks shared by the differentiable functions: each names the function and the argument.
#include <string_view>

#include "core/tensor.h"

namespace meridian::autograd {
class BackwardContext;
}

namespace meridian::fn::detail {

// A defined, contiguous f32 tensor on the cpu (the only kind the cpu kernels take).
void require_f32_cpu(const Tensor& t, std::string_view function, std::string_view argument);
void require_i32_cpu(const Tensor& t, std::string_view function, std::string_view argument);
void require_ndim(const Tensor& t, int ndim, std::string_view function, std::string_view argument);
// Raw gradient pointer for input `index`, or null when that input needs no gradient.
float* grad_or_null(autograd::BackwardContext& ctx, int index);

}  // namespace meridian::fn::detail

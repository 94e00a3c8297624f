#pragma once
// GELU's kernels on the device the tensors live on, for the functions built from it (gelu, and
// linear_gelu's unfused paths): same dtype and shape throughout, f32 or bf16.
#include "core/tensor.h"

namespace meridian::fn::detail {

// out = gelu(x) (tanh form).
void gelu_forward_into(const Tensor& out, const Tensor& x);
// dinp += gelu'(x) · dout, or dinp = gelu'(x) · dout with `overwrite` (cuda only: dinp need not be
// initialised; the cpu kernel adds, so a cpu dinp must start at zero).
void gelu_backward_into(const Tensor& dinp, const Tensor& x, const Tensor& dout, bool overwrite = false);

}  // namespace meridian::fn::detail

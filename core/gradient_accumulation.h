#pragma once
#include "core/tensor.h"

namespace meridian::detail {

// dst += src on the device both live on: dst any strides on the cpu (contiguous on cuda), src
// contiguous, same shape; each f32 or bf16. The sum is formed in fp32 and rounded once into a bf16
// dst. The mixed pairs carry gradients between bf16 activations (or bf16 working copies of weights)
// and fp32 master weights. Not recorded by autograd.
void accumulate_gradient(const Tensor& dst, const Tensor& src);

}  // namespace meridian::detail

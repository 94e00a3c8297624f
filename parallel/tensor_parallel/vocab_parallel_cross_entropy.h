#pragma once
// Softmax cross-entropy on vocabulary-parallel logits (Megatron's vocab_parallel_cross_entropy):
// rank r of the tensor-parallel group holds logits (..., Vp/tp) for vocabulary columns
// [r·Vp/tp, (r+1)·Vp/tp). The full logits are never gathered: per row, the max and then the sum of
// exponentials and the target's logit are all-reduced over the group (N and 2·N floats), and every
// rank gets the same loss. Backward needs no communication: each rank's logit gradient is
// softmax − one-hot restricted to its columns.
//
// As fn::cross_entropy: columns whose global index is ≥ vocab_size are padding (no part in the
// softmax, no gradient), negative targets are ignored, and the result is the mean over the rest.
//
// Devices: cpu logits with an MPI group; cuda logits (f32 or bf16) with an NCCL group, the
// statistics and the gradient computed by ops/cuda/vocab_slice_cross_entropy.h. Targets (i32) may be
// on the host or on the logits' device; they are checked on the host, where the mean loss is formed
// in double (one read back of 3·N floats per call on a GPU). The loss lives on the logits' device.
#include <cstdint>

#include "core/tensor.h"
#include "parallel/tensor_parallel/tensor_parallel_context.h"

namespace meridian::parallel {

Tensor vocab_parallel_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t vocab_size,
                                    const TensorParallelContext& context);

}  // namespace meridian::parallel

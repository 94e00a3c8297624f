#pragma once
// A linear layer whose weight is split by input columns across the tensor-parallel group (Megatron's
// RowParallelLinear). Logical weight (out, in): rank r of tp holds columns [r·in/tp, (r+1)·in/tp)
// (registered under the logical name with its ShardSpec); the bias (out) is replicated and added once,
// after the ranks' partial products are summed.
//
// Input: this rank's (..., in/tp), the output of a column-parallel layer. Output: the sum over the
// group, replicated (..., out) (reduce_from_tensor_parallel_region) — or, under sequence parallelism,
// reduce-scattered along the sequence to this rank's (B, T/tp, out).
#include <cstdint>

#include "core/nn/module.h"
#include "parallel/tensor_parallel/tensor_parallel_context.h"

namespace meridian::parallel {

class RowParallelLinear : public nn::Module {
 public:
  RowParallelLinear(int64_t in_features, int64_t out_features, float init_std, TensorParallelContext context,
                    bool bias = true);
  Tensor forward(const Tensor& x) const;
  // The second half of forward, for callers that compute the partial product x·weightᵀ themselves
  // (ParallelMlp, in one function with the GELU): the sum over the group (reduce-scattered under
  // sequence parallelism), plus the bias.
  Tensor reduce_partial(const Tensor& partial) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  TensorParallelContext context_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace meridian::parallel

#pragma once
// A linear layer whose weight is split by output rows across the tensor-parallel group (Megatron's
// ColumnParallelLinear: the columns of the output). Logical weight (out, in), bias (out); rank r of
// tp holds rows [r·out/tp, (r+1)·out/tp) of both, registered under the logical names with their
// ShardSpec, so initialisation and checkpoints see the logical tensors.
//
// Input: replicated (..., in) — entered through copy_to_tensor_parallel_region, whose backward sums
// the input gradient over the group — or, under sequence parallelism, this rank's (B, T/tp, in),
// all-gathered along the sequence first. Output: (..., out/tp), this rank's output columns (or the
// whole (..., out) with gather_output).
#include <cstdint>
#include <optional>

#include "core/nn/module.h"
#include "parallel/tensor_parallel/tensor_parallel_context.h"

namespace meridian::parallel {

struct ColumnParallelOptions {
  bool bias = true;
  // The logical output axis is made of `parts` equal parts (q, k and v of a fused projection) and
  // each rank takes its slice of every part, so its output is [q slice | k slice | v slice]: whole
  // attention heads of each.
  int64_t parts = 1;
  bool gather_output = false;
};

// The rows of a logical (rows, ...) tensor that rank `rank` of `size` holds when axis 0 is split
// (each of `parts` parts split alike); none for a group of one, which holds the whole tensor.
std::optional<ShardSpec> row_split_shard(const Shape& global_shape, int rank, int size, int64_t parts = 1);

// Into the tensor-parallel region: the whole sequence on every rank (an identity whose backward
// all-reduces, or an all-gather under sequence parallelism whose backward reduce-scatters).
Tensor column_parallel_input(const Tensor& x, const TensorParallelContext& context);

// Enters the tensor-parallel region and applies x·weightᵀ + bias with this rank's weight rows. For
// layers that own no weight (the tied head).
Tensor column_parallel_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              const TensorParallelContext& context);

class ColumnParallelLinear : public nn::Module {
 public:
  ColumnParallelLinear(int64_t in_features, int64_t out_features, float init_std, TensorParallelContext context,
                       ColumnParallelOptions options = {});
  Tensor forward(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const TensorParallelContext& context() const { return context_; }

 private:
  TensorParallelContext context_;
  ColumnParallelOptions options_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace meridian::parallel

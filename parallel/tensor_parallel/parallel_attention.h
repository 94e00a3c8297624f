#pragma once
// Causal self-attention with its heads split across the tensor-parallel group: the fused qkv
// projection is column-parallel in three parts (rank r holds the q, k and v rows of heads
// [r·H/tp, (r+1)·H/tp)), each rank attends over its own heads, and the output projection is
// row-parallel. Parameter names and logical shapes are those of nn::CausalSelfAttention.
#include <cstdint>
#include <memory>

#include "core/nn/module.h"
#include "parallel/tensor_parallel/column_parallel_linear.h"
#include "parallel/tensor_parallel/row_parallel_linear.h"

namespace meridian::parallel {

class ParallelAttention : public nn::Module {
 public:
  ParallelAttention(int64_t channels, int64_t num_heads, float init_std, float projection_std,
                    TensorParallelContext context);
  // x: replicated (B, T, C), or (B, T/tp, C) under sequence parallelism; the output alike.
  Tensor forward(const Tensor& x) const;

 private:
  int64_t local_heads_;
  std::shared_ptr<ColumnParallelLinear> c_attn_;
  std::shared_ptr<RowParallelLinear> c_proj_;
};

}  // namespace meridian::parallel

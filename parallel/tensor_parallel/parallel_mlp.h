#pragma once
// The transformer MLP split Megatron's way: fc (C → 4C) column-parallel, GELU on this rank's 4C/tp
// columns, projection (4C → C) row-parallel; one all-reduce (or reduce-scatter) per forward and one
// in backward. Parameter names and logical shapes are those of nn::Mlp.
#include <cstdint>
#include <memory>

#include "core/nn/module.h"
#include "parallel/tensor_parallel/column_parallel_linear.h"
#include "parallel/tensor_parallel/row_parallel_linear.h"

namespace meridian::parallel {

class ParallelMlp : public nn::Module {
 public:
  ParallelMlp(int64_t channels, float init_std, float projection_std, TensorParallelContext context);
  // x: replicated (B, T, C), or (B, T/tp, C) under sequence parallelism; the output alike.
  Tensor forward(const Tensor& x) const;

 private:
  std::shared_ptr<ColumnParallelLinear> c_fc_;
  std::shared_ptr<RowParallelLinear> c_proj_;
};

}  // namespace meridian::parallel

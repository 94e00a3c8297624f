#include "parallel/tensor_parallel/parallel_mlp.h"

#include "core/functions/functions.h"

namespace meridian::parallel {

ParallelMlp::ParallelMlp(int64_t channels, float init_std, float projection_std, TensorParallelContext context) {
  c_fc_ = register_module("c_fc", std::make_shared<ColumnParallelLinear>(channels, 4 * channels, init_std, context));
  c_proj_ = register_module("c_proj",
                            std::make_shared<RowParallelLinear>(4 * channels, channels, projection_std, context));
}

// c_fc, the GELU and this rank's part of c_proj as one function (fn::mlp, as nn::Mlp; c_fc never
// gathers its output), then c_proj's reduction and bias.
Tensor ParallelMlp::forward(const Tensor& x) const {
  const Tensor partial =
      fn::mlp(column_parallel_input(x, c_fc_->context()), c_fc_->weight(), c_fc_->bias(), c_proj_->weight());
  return c_proj_->reduce_partial(partial);
}

}  // namespace meridian::parallel

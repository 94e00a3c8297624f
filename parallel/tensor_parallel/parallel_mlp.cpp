#include "parallel/tensor_parallel/parallel_mlp.h"

#include "core/functions/functions.h"

namespace meridian::parallel {

ParallelMlp::ParallelMlp(int64_t channels, float init_std, float projection_std, TensorParallelContext context) {
  c_fc_ = register_module("c_fc", std::make_shared<ColumnParallelLinear>(channels, 4 * channels, init_std, context));
  c_proj_ = register_module("c_proj",
                            std::make_shared<RowParallelLinear>(4 * channels, channels, projection_std, context));
}

// c_fc and the GELU as one function, as nn::Mlp (c_fc never gathers its output).
Tensor ParallelMlp::forward(const Tensor& x) const {
  return c_proj_->forward(
      column_parallel_linear_gelu(x, c_fc_->weight(), c_fc_->bias(), c_fc_->context()));
}

}  // namespace meridian::parallel

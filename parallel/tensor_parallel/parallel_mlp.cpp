#include "parallel/tensor_parallel/parallel_mlp.h"

#include "core/functions/functions.h"

namespace meridian::parallel {

ParallelMlp::ParallelMlp(int64_t channels, float init_std, float projection_std, TensorParallelContext context) {
  c_fc_ = register_module("c_fc", std::make_shared<ColumnParallelLinear>(channels, 4 * channels, init_std, context));
  c_proj_ = register_module("c_proj",
                            std::make_shared<RowParallelLinear>(4 * channels, channels, projection_std, context));
}

Tensor ParallelMlp::forward(const Tensor& x) const { return c_proj_->forward(fn::gelu(c_fc_->forward(x))); }

}  // namespace meridian::parallel

#include "parallel/tensor_parallel/parallel_attention.h"

#include "core/functions/functions.h"

namespace meridian::parallel {

ParallelAttention::ParallelAttention(int64_t channels, int64_t num_heads, float init_std, float projection_std,
                                     TensorParallelContext context) {
  const int tp = context.size();
  if (num_heads <= 0 || channels % num_heads != 0)
    MERIDIAN_FAIL("attention: ", num_heads, " heads do not divide ", channels, " channels");
  if (num_heads % tp != 0)
    MERIDIAN_FAIL("tensor-parallel attention: ", num_heads, " heads do not split evenly over ", tp,
                  " tensor-parallel ranks (each rank holds whole heads)");
  local_heads_ = num_heads / tp;
  c_attn_ = register_module("c_attn", std::make_shared<ColumnParallelLinear>(channels, 3 * channels, init_std, context,
                                                                             ColumnParallelOptions{true, 3, false}));
  c_proj_ = register_module("c_proj", std::make_shared<RowParallelLinear>(channels, channels, projection_std, context));
}

Tensor ParallelAttention::forward(const Tensor& x) const {
  return c_proj_->forward(fn::causal_self_attention(c_attn_->forward(x), local_heads_));
}

}  // namespace meridian::parallel

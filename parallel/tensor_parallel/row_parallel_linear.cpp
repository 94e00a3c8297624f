#include "parallel/tensor_parallel/row_parallel_linear.h"

#include "core/functions/functions.h"
#include "parallel/tensor_parallel/mappings.h"

namespace meridian::parallel {

RowParallelLinear::RowParallelLinear(int64_t in_features, int64_t out_features, float init_std,
                                     TensorParallelContext context, bool bias)
    : context_(std::move(context)) {
  const int tp = context_.size();
  if (in_features % tp != 0)
    MERIDIAN_FAIL("row-parallel linear: ", in_features, " inputs do not split evenly over ", tp,
                  " tensor-parallel ranks");
  const int64_t local_in = in_features / tp;
  std::optional<ShardSpec> columns;
  if (context_.enabled()) columns = ShardSpec{{out_features, in_features}, {0, context_.rank() * local_in}};
  weight_ = register_parameter("weight", {out_features, local_in}, InitSpec::normal(init_std), std::nullopt, columns);
  if (bias) bias_ = register_parameter("bias", {out_features}, InitSpec::zeros());
}

Tensor RowParallelLinear::forward(const Tensor& x) const { return reduce_partial(fn::linear(x, weight_)); }

Tensor RowParallelLinear::reduce_partial(const Tensor& partial) const {
  const Tensor summed = context_.sequence_parallel_enabled()
                            ? reduce_scatter_to_sequence_parallel_region(partial, context_.group)
                            : reduce_from_tensor_parallel_region(partial, context_.group);
  // The bias is added after the reduction, in the activations' dtype (an fp32 master bias is cast to
  // bf16 under mixed precision; its gradient returns in fp32).
  return bias_.defined() ? fn::add(summed, fn::cast(bias_, summed.dtype())) : summed;
}

}  // namespace meridian::parallel

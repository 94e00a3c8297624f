#include "parallel/tensor_parallel/column_parallel_linear.h"

#include "core/functions/functions.h"
#include "parallel/tensor_parallel/mappings.h"

namespace meridian::parallel {

std::optional<ShardSpec> row_split_shard(const Shape& global_shape, int rank, int size, int64_t parts) {
  if (size == 1) return std::nullopt;
  MERIDIAN_CHECK(!global_shape.empty() && parts >= 1 && global_shape[0] % (parts * size) == 0,
                 "row split of ", shape_str(global_shape), " into ", parts, " parts over ", size, " ranks");
  Shape offsets(global_shape.size(), 0);
  offsets[0] = rank * (global_shape[0] / parts / size);
  return ShardSpec{global_shape, offsets, parts};
}

Tensor column_parallel_input(const Tensor& x, const TensorParallelContext& context) {
  return context.sequence_parallel_enabled() ? gather_from_sequence_parallel_region(x, context.group)
                                             : copy_to_tensor_parallel_region(x, context.group);
}

Tensor column_parallel_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              const TensorParallelContext& context) {
  return fn::linear(column_parallel_input(x, context), weight, bias);
}

ColumnParallelLinear::ColumnParallelLinear(int64_t in_features, int64_t out_features, float init_std,
                                           TensorParallelContext context, ColumnParallelOptions options)
    : context_(std::move(context)), options_(options) {
  const int tp = context_.size();
  if (options_.parts < 1 || out_features % (options_.parts * tp) != 0)
    MERIDIAN_FAIL("column-parallel linear: ", out_features, " outputs", options_.parts > 1 ? " in " : "",
                  options_.parts > 1 ? std::to_string(options_.parts) + " parts" : std::string(),
                  " do not split evenly over ", tp, " tensor-parallel ranks");
  const int64_t local_out = out_features / tp;
  weight_ = register_parameter("weight", {local_out, in_features}, InitSpec::normal(init_std), std::nullopt,
                               row_split_shard({out_features, in_features}, context_.rank(), tp, options_.parts));
  if (options_.bias)
    bias_ = register_parameter("bias", {local_out}, InitSpec::zeros(), std::nullopt,
                               row_split_shard({out_features}, context_.rank(), tp, options_.parts));
}

Tensor ColumnParallelLinear::forward(const Tensor& x) const {
  const Tensor out = column_parallel_linear(x, weight_, bias_, context_);
  return options_.gather_output ? gather_from_tensor_parallel_region(out, context_.group) : out;
}

}  // namespace meridian::parallel

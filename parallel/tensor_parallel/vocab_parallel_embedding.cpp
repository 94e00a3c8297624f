#include "parallel/tensor_parallel/vocab_parallel_embedding.h"

#include "core/functions/functions.h"
#include "parallel/tensor_parallel/column_parallel_linear.h"
#include "parallel/tensor_parallel/mappings.h"

namespace meridian::parallel {

VocabParallelEmbedding::VocabParallelEmbedding(int64_t rows, int64_t channels, float init_std,
                                               int64_t zero_rows_from, TensorParallelContext context)
    : context_(std::move(context)), rows_(rows) {
  const int tp = context_.size();
  if (rows % tp != 0)
    MERIDIAN_FAIL("vocabulary-parallel embedding: ", rows, " rows do not split evenly over ", tp,
                  " tensor-parallel ranks (pad the vocabulary, see vocab_padding.h)");
  const int64_t local_rows = rows / tp;
  first_row_ = context_.rank() * local_rows;
  weight_ = register_parameter("weight", {local_rows, channels}, InitSpec::normal(init_std, zero_rows_from),
                               std::nullopt, row_split_shard({rows, channels}, context_.rank(), tp));
}

Tensor VocabParallelEmbedding::forward(const Tensor& ids) const {
  // embedding_slice checks the ids against the whole table (one host copy of them on a GPU).
  const Tensor partial = fn::embedding_slice(ids, weight_, first_row_, rows_);
  return context_.sequence_parallel_enabled() ? reduce_scatter_to_sequence_parallel_region(partial, context_.group)
                                              : reduce_from_tensor_parallel_region(partial, context_.group);
}

}  // namespace meridian::parallel

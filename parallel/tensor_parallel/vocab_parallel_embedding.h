#pragma once
// A token embedding whose (padded) vocabulary rows are split across the tensor-parallel group
// (Megatron's VocabParallelEmbedding): rank r of tp holds rows [r·Vp/tp, (r+1)·Vp/tp) of the logical
// table (Vp, C), under the logical name with its ShardSpec. Each rank looks up the ids in its slice
// (zeros for the others) and the partial embeddings are summed over the group: all-reduced to a
// replicated (B, T, C), or, under sequence parallelism, reduce-scattered along the sequence to this
// rank's (B, T/tp, C). The same slice serves as the tied output head (vocabulary-parallel logits).
#include <cstdint>

#include "core/nn/module.h"
#include "parallel/tensor_parallel/tensor_parallel_context.h"

namespace meridian::parallel {

class VocabParallelEmbedding : public nn::Module {
 public:
  // rows: the padded vocabulary (tp must divide it, see vocab_padding.h); logical rows from
  // `zero_rows_from` on (padding) start at zero.
  VocabParallelEmbedding(int64_t rows, int64_t channels, float init_std, int64_t zero_rows_from,
                         TensorParallelContext context);
  Tensor forward(const Tensor& ids) const;  // ids (B, T) i32
  const Tensor& weight() const { return weight_; }
  int64_t first_row() const { return first_row_; }

 private:
  TensorParallelContext context_;
  int64_t rows_ = 0;
  int64_t first_row_ = 0;
  Tensor weight_;
};

}  // namespace meridian::parallel

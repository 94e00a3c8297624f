// GPT-2's stage pieces with tensor parallelism (tp > 1): see the table in gpt2.h.
#include "core/functions/functions.h"
#include "models/gpt2.h"
#include "parallel/tensor_parallel/column_parallel_linear.h"
#include "parallel/tensor_parallel/parallel_block.h"
#include "parallel/tensor_parallel/vocab_padding.h"
#include "parallel/tensor_parallel/vocab_parallel_embedding.h"

namespace meridian::models {

void Gpt2::build_tensor_parallel(float init_std, float projection_std) {
  const int tp = tensor_parallel_.size();
  const int64_t C = config_.channels;
  if (C % tp != 0 || config_.num_heads % tp != 0)
    MERIDIAN_FAIL("gpt2: tensor parallelism over ", tp, " ranks needs channels (", C, ") and heads (",
                  config_.num_heads, ") divisible by ", tp, " (each rank holds whole heads)");
  config_.padded_vocab_size = parallel::tensor_parallel_padded_vocab(config_.padded_vocab_size, tp);
  // Registration order as in the plain model: wte, wpe, h.*, ln_f.
  if (placement_.embedding || placement_.head)
    parallel_wte_ = register_module("wte", std::make_shared<parallel::VocabParallelEmbedding>(
                                               config_.padded_vocab_size, C, init_std, config_.vocab_size,
                                               tensor_parallel_));
  if (placement_.embedding)
    wpe_ = register_module("wpe", std::make_shared<nn::Embedding>(config_.max_seq_len, C, init_std));
  for (int64_t i = 0; i < placement_.num_blocks; ++i) {
    const int64_t layer = placement_.first_block + i;
    parallel_blocks_.push_back(register_module(
        "h." + std::to_string(layer),
        std::make_shared<parallel::ParallelBlock>(C, config_.num_heads, init_std, projection_std, tensor_parallel_)));
  }
  if (placement_.head) ln_f_ = register_module("ln_f", std::make_shared<nn::LayerNorm>(C));
}

Tensor Gpt2::embed_tensor_parallel(const Tensor& tokens) const {
  const int64_t T = tokens.dim(1);
  int64_t first_position = 0, positions_here = T;
  if (tensor_parallel_.sequence_parallel_enabled()) {
    const int tp = tensor_parallel_.size();
    if (T % tp != 0)
      MERIDIAN_FAIL("gpt2: sequence parallelism over ", tp, " ranks needs the sequence length (", T,
                    ") divisible by ", tp);
    positions_here = T / tp;
    first_position = tensor_parallel_.rank() * positions_here;
  }
  // (B, T, C) summed over the group, or this rank's (B, T/tp, C) under sequence parallelism.
  const Tensor tokens_embedded = parallel_wte_->forward(tokens);
  Tensor positions = Tensor::empty({positions_here}, DType::i32);
  for (int64_t t = 0; t < positions_here; ++t)
    positions.data<int32_t>()[t] = static_cast<int32_t>(first_position + t);
  positions = positions.to(tokens.device());  // the same tensor on the cpu
  return fn::cast(fn::add(tokens_embedded, wpe_->forward(positions)), compute_dtype_);
}

Tensor Gpt2::vocab_parallel_logits(const Tensor& hidden) const {
  if (!placement_.head) MERIDIAN_FAIL("gpt2: the loss on a stage without the head");
  // The tied head is column-parallel over the vocabulary: this rank's slice of wte.
  return parallel::column_parallel_linear(ln_f_->forward(hidden), parallel_wte_->weight(), Tensor(),
                                          tensor_parallel_);
}

}  // namespace meridian::models

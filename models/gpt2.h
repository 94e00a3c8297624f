#pragma once
// GPT-2 as published (Radford et al. 2019; the layout of llm.c and nanoGPT): learned positions,
// pre-norm blocks, GELU (tanh), LayerNorm eps 1e-5, tied token embedding and output head, and a
// vocabulary padded for speed whose padded rows take no part in the softmax.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/nn/layers.h"
#include "core/nn/module.h"
#include "parallel/tensor_parallel/tensor_parallel_context.h"

namespace meridian::parallel {
class ParallelBlock;
class VocabParallelEmbedding;
}  // namespace meridian::parallel

namespace meridian::models {

struct Gpt2Config {
  int64_t max_seq_len = 1024;
  int64_t vocab_size = 50257;
  int64_t padded_vocab_size = 50304;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t channels = 768;

  // "gpt2-124m" (and -350m, -774m, -1558m), or "gpt-mini" (a small byte-level model).
  static Gpt2Config preset(std::string_view name);
  static std::vector<std::string> preset_names();
  // Rounds a vocabulary up to a multiple of 128, as llm.c does (50257 → 50304).
  static int64_t padded(int64_t vocab_size);
  // Throws naming the first inconsistent field (heads not dividing channels, padding < vocab, ...).
  void validate() const;
  int64_t head_dim() const { return channels / num_heads; }
  // Parameter count of the model this config builds (padded vocabulary rows included, as llm.c).
  int64_t num_parameters() const;
  // Training flops per token at sequence length T: 6·N + 6·L·C·T (llm.c's MFU numerator).
  double flops_per_token(int64_t seq_len) const;
  std::string to_string() const;
};

// Which part of the model a rank holds: a pipeline stage is blocks [first_block, first_block +
// num_blocks), plus the embeddings on the first stage and the final norm and head on the last. Block
// parameters keep their global names ("h.7.…") wherever they live, so initialisation and checkpoints
// do not depend on the split. The default is the whole model.
struct Gpt2Placement {
  int64_t first_block = 0;
  int64_t num_blocks = -1;  // -1: through the last block
  bool embedding = true;
  bool head = true;
};

// Tensor parallelism (docs/tensor_parallel.md): with a tp group of more than one rank, every block
// uses Megatron's parallel attention and MLP, the token embedding and tied head are split by
// vocabulary rows (the padded vocabulary grows, if needed, until tp divides it: config() reports
// the size used), and head_loss() never gathers the logits. Parameters keep their logical names and
// carry a ShardSpec. The shapes the stage pieces take and return:
//
//                        embed() returns,          logits()/head_loss()
//                        run_blocks() takes/returns take
//   tp = 1 or no SP      (B, T, C), replicated     (B, T, C)
//   sequence parallel    (B, T/tp, C): positions [r·T/tp, (r+1)·T/tp) of tp rank r (T % tp == 0)
//
// Under sequence parallelism the split happens in embed() (the vocabulary-parallel lookup is
// reduce-scattered along the sequence, then this rank's positions get their wpe rows) and the
// gather in the head, after ln_f (which runs on the sequence shard, as Megatron's final norm). So a
// pipeline stage sends and receives (B, T/tp, C) per tp rank.
class Gpt2 : public nn::Module {
 public:
  explicit Gpt2(const Gpt2Config& config, const Gpt2Placement& placement = {},
                parallel::TensorParallelContext tensor_parallel = {});
  const Gpt2Config& config() const { return config_; }
  const Gpt2Placement& placement() const { return placement_; }
  const parallel::TensorParallelContext& tensor_parallel() const { return tensor_parallel_; }
  int64_t first_block() const { return placement_.first_block; }
  int64_t num_blocks() const { return placement_.num_blocks; }

  // Mixed precision (docs/mixed_precision.md): with bf16, embed() casts its output to bf16, so the
  // blocks and the head compute in bf16 on the fp32 parameters (the master weights, converted per
  // use by the functions); logits are bf16, the loss f32. Default f32. With tp > 1 the
  // tensor-parallel collectives move bf16 activations too.
  void set_compute_dtype(DType dtype);
  DType compute_dtype() const { return compute_dtype_; }

  // The stage pieces. tokens (B, T) i32 → hidden (B, T, C) (needs the embedding).
  Tensor embed(const Tensor& tokens) const;
  // This rank's blocks on hidden (B, T, C). `recompute` rebuilds block activations during backward
  // instead of keeping them.
  Tensor run_blocks(const Tensor& hidden, bool recompute = false) const;
  // Final LayerNorm and the tied head → logits (B, T, padded vocab) (needs the head). With tp > 1
  // the vocabulary-parallel logits are all-gathered (for sampling; training uses head_loss()).
  Tensor logits(const Tensor& hidden) const;
  // Mean cross-entropy of the next-token predictions against targets (B, T) i32 (needs the head).
  Tensor head_loss(const Tensor& hidden, const Tensor& targets) const;

  // The whole model (the placement must hold all of it).
  Tensor forward(const Tensor& tokens, bool recompute = false) const;
  Tensor loss(const Tensor& tokens, const Tensor& targets, bool recompute = false) const;

  // The token embedding, tied to the output head. A last stage without the embedding holds its own
  // copy under the same name (same initial values); pipeline parallelism keeps the two in step.
  // With tp > 1 this is the rank's vocabulary slice.
  const Tensor& tied_embedding() const;

 private:
  void require_whole(const char* what) const;
  // The tp > 1 variants (models/gpt2_tensor_parallel.cpp).
  void build_tensor_parallel(float init_std, float projection_std);
  Tensor embed_tensor_parallel(const Tensor& tokens) const;
  Tensor vocab_parallel_logits(const Tensor& hidden) const;  // (B, T, padded vocab / tp)

  Gpt2Config config_;
  Gpt2Placement placement_;
  DType compute_dtype_ = DType::f32;
  std::shared_ptr<nn::Embedding> wte_;
  std::shared_ptr<nn::Embedding> wpe_;
  std::vector<std::shared_ptr<nn::Block>> blocks_;
  std::shared_ptr<nn::LayerNorm> ln_f_;
  parallel::TensorParallelContext tensor_parallel_;
  // tp > 1: these replace wte_ and blocks_ (same parameter names, sharded).
  std::shared_ptr<parallel::VocabParallelEmbedding> parallel_wte_;
  std::vector<std::shared_ptr<parallel::ParallelBlock>> parallel_blocks_;
};

}  // namespace meridian::models

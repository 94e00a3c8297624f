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

class Gpt2 : public nn::Module {
 public:
  explicit Gpt2(const Gpt2Config& config);
  const Gpt2Config& config() const { return config_; }

  // tokens (B, T) i32 → logits (B, T, padded vocab). `recompute` rebuilds block activations during
  // backward instead of keeping them.
  Tensor forward(const Tensor& tokens, bool recompute = false) const;
  // Mean cross-entropy of the next-token predictions against targets (B, T) i32.
  Tensor loss(const Tensor& tokens, const Tensor& targets, bool recompute = false) const;

 private:
  Gpt2Config config_;
  std::shared_ptr<nn::Embedding> wte_;
  std::shared_ptr<nn::Embedding> wpe_;
  std::vector<std::shared_ptr<nn::Block>> blocks_;
  std::shared_ptr<nn::LayerNorm> ln_f_;
};

}  // namespace meridian::models

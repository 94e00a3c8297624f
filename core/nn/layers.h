#pragma once
// The transformer's building blocks, GPT-2 style (pre-norm), on the differentiable functions.
#include <cstdint>

#include "core/nn/module.h"

namespace meridian::nn {

class Linear : public Module {
 public:
  // weight (out, in) ~ N(0, init_std), bias zeros.
  Linear(int64_t in_features, int64_t out_features, bool bias, float init_std);
  Tensor forward(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  Tensor weight_;
  Tensor bias_;
};

class Embedding : public Module {
 public:
  // table (rows, channels) ~ N(0, init_std); rows from `zero_rows_from` on (padding) start at zero.
  Embedding(int64_t rows, int64_t channels, float init_std, int64_t zero_rows_from = -1);
  Tensor forward(const Tensor& ids) const;
  const Tensor& weight() const { return weight_; }

 private:
  Tensor weight_;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t channels, float eps = 1e-5f);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor weight_;
  Tensor bias_;
  float eps_;
};

// fc (C → 4C) → GELU → projection (4C → C).
class Mlp : public Module {
 public:
  Mlp(int64_t channels, float init_std, float projection_std);
  Tensor forward(const Tensor& x) const;

 private:
  std::shared_ptr<Linear> c_fc_;
  std::shared_ptr<Linear> c_proj_;
};

// Fused qkv projection → causal attention → output projection.
class CausalSelfAttention : public Module {
 public:
  CausalSelfAttention(int64_t channels, int64_t num_heads, float init_std, float projection_std);
  Tensor forward(const Tensor& x) const;  // x (B, T, C)

 private:
  int64_t num_heads_;
  std::shared_ptr<Linear> c_attn_;
  std::shared_ptr<Linear> c_proj_;
};

// x + attn(ln_1(x)), then + mlp(ln_2(·)). With recompute on, its activations are rebuilt in backward.
class Block : public Module {
 public:
  Block(int64_t channels, int64_t num_heads, float init_std, float projection_std);
  Tensor forward(const Tensor& x, bool recompute = false) const;

 private:
  Tensor forward_body(const Tensor& x) const;

  std::shared_ptr<LayerNorm> ln_1_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<LayerNorm> ln_2_;
  std::shared_ptr<Mlp> mlp_;
};

}  // namespace meridian::nn

#include "core/nn/layers.h"

#include "core/autograd/checkpoint.h"
#include "core/functions/functions.h"

namespace meridian::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, float init_std) {
  weight_ = register_parameter("weight", {out_features, in_features}, InitSpec::normal(init_std));
  if (bias) bias_ = register_parameter("bias", {out_features}, InitSpec::zeros());
}

Tensor Linear::forward(const Tensor& x) const { return fn::linear(x, weight_, bias_); }

Embedding::Embedding(int64_t rows, int64_t channels, float init_std, int64_t zero_rows_from) {
  weight_ = register_parameter("weight", {rows, channels}, InitSpec::normal(init_std, zero_rows_from));
}

Tensor Embedding::forward(const Tensor& ids) const { return fn::embedding(ids, weight_); }

LayerNorm::LayerNorm(int64_t channels, float eps) : eps_(eps) {
  weight_ = register_parameter("weight", {channels}, InitSpec::ones());
  bias_ = register_parameter("bias", {channels}, InitSpec::zeros());
}

Tensor LayerNorm::forward(const Tensor& x) const { return fn::layer_norm(x, weight_, bias_, eps_); }

Mlp::Mlp(int64_t channels, float init_std, float projection_std) {
  c_fc_ = register_module("c_fc", std::make_shared<Linear>(channels, 4 * channels, true, init_std));
  c_proj_ = register_module("c_proj", std::make_shared<Linear>(4 * channels, channels, true, projection_std));
}

// One function (fn::mlp): on a GPU the GELU is c_fc's epilogue and its derivative c_proj's.
Tensor Mlp::forward(const Tensor& x) const {
  return fn::mlp(x, c_fc_->weight(), c_fc_->bias(), c_proj_->weight(), c_proj_->bias());
}

CausalSelfAttention::CausalSelfAttention(int64_t channels, int64_t num_heads, float init_std,
                                         float projection_std)
    : num_heads_(num_heads) {
  if (num_heads <= 0 || channels % num_heads != 0)
    MERIDIAN_FAIL("attention: ", num_heads, " heads do not divide ", channels, " channels");
  c_attn_ = register_module("c_attn", std::make_shared<Linear>(channels, 3 * channels, true, init_std));
  c_proj_ = register_module("c_proj", std::make_shared<Linear>(channels, channels, true, projection_std));
}

Tensor CausalSelfAttention::forward(const Tensor& x) const {
  return c_proj_->forward(fn::causal_self_attention(c_attn_->forward(x), num_heads_));
}

Block::Block(int64_t channels, int64_t num_heads, float init_std, float projection_std) {
  ln_1_ = register_module("ln_1", std::make_shared<LayerNorm>(channels));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(channels, num_heads, init_std, projection_std));
  ln_2_ = register_module("ln_2", std::make_shared<LayerNorm>(channels));
  mlp_ = register_module("mlp", std::make_shared<Mlp>(channels, init_std, projection_std));
}

Tensor Block::forward_body(const Tensor& x) const {
  Tensor h = fn::add(x, attn_->forward(ln_1_->forward(x)));
  return fn::add(h, mlp_->forward(ln_2_->forward(h)));
}

Tensor Block::forward(const Tensor& x, bool recompute) const {
  if (!recompute) return forward_body(x);
  return autograd::checkpoint([this](const Tensor& input) { return forward_body(input); }, x, parameters());
}

}  // namespace meridian::nn

// The whole GPT-2 (tied head, padded vocabulary, every block) against finite differences of a float64
// GPT-2 written from the reference ops: the model's backward is checked end to end, not just per op.
#include <gtest/gtest.h>

#include <map>

#include "../core/gradcheck.h"
#include "models/gpt2.h"
#include "reference/reference_ops.h"

namespace meridian::models {
namespace {

using Params = std::map<std::string, std::vector<double>>;

std::vector<double> add(std::vector<double> a, const std::vector<double>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

double reference_loss(const Gpt2Config& c, const Params& p, const std::vector<int32_t>& tokens,
                      const std::vector<int32_t>& targets, int64_t B, int64_t T) {
  const int64_t C = c.channels, N = B * T;
  std::vector<int32_t> positions(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) positions[static_cast<size_t>(i)] = static_cast<int32_t>(i % T);
  std::vector<double> x = add(reference::embedding(tokens, p.at("wte.weight"), N, C),
                              reference::embedding(positions, p.at("wpe.weight"), N, C));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    auto w = [&](const std::string& name) { return p.at("h." + std::to_string(l) + "." + name); };
    auto h = reference::layernorm(x, w("ln_1.weight"), w("ln_1.bias"), N, C, 1e-5).out;
    auto qkv = reference::linear(h, w("attn.c_attn.weight"), w("attn.c_attn.bias"), N, C, 3 * C);
    auto attn = reference::causal_self_attention(qkv, B, T, C, c.num_heads).out;
    x = add(x, reference::linear(attn, w("attn.c_proj.weight"), w("attn.c_proj.bias"), N, C, C));
    h = reference::layernorm(x, w("ln_2.weight"), w("ln_2.bias"), N, C, 1e-5).out;
    auto f = reference::gelu(reference::linear(h, w("mlp.c_fc.weight"), w("mlp.c_fc.bias"), N, C, 4 * C));
    x = add(x, reference::linear(f, w("mlp.c_proj.weight"), w("mlp.c_proj.bias"), N, 4 * C, C));
  }
  x = reference::layernorm(x, p.at("ln_f.weight"), p.at("ln_f.bias"), N, C, 1e-5).out;
  const auto logits = reference::linear(x, p.at("wte.weight"), {}, N, C, c.padded_vocab_size);
  const auto ce = reference::cross_entropy(logits, targets, N, c.vocab_size, c.padded_vocab_size);
  double total = 0.0;
  for (double loss : ce.losses) total += loss;
  return total / static_cast<double>(N);
}

TEST(Gpt2Gradcheck, EveryParameterMatchesFiniteDifferences) {
  Gpt2Config c;
  c.max_seq_len = 6;
  c.vocab_size = 11;
  c.padded_vocab_size = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.channels = 4;
  Gpt2 model(c);
  model.initialize(3);
  const int64_t B = 2, T = 5;
  const std::vector<int32_t> tokens = {1, 4, 9, 10, 0, 3, 3, 7, 2, 5};
  const std::vector<int32_t> targets = {4, 9, 10, 0, 6, 3, 7, 2, 5, 8};

  // Larger weights than GPT-2's 0.02 so every path carries a gradient well above rounding.
  Params params;
  uint32_t seed = 10;
  for (auto& p : model.named_parameters()) {
    std::vector<double> values = testing::random_values(static_cast<size_t>(p.tensor.numel()), seed++, -0.5, 0.5);
    if (p.name == "wte.weight")
      for (int64_t i = c.vocab_size * c.channels; i < p.tensor.numel(); ++i) values[static_cast<size_t>(i)] = 0.0;
    if (p.name.find("ln") != std::string::npos && p.name.find("weight") != std::string::npos)
      for (double& v : values) v += 1.0;
    std::copy(values.begin(), values.end(), p.tensor.data<float>());
    params[p.name] = values;
  }

  Tensor loss = model.loss(Tensor::from_vector<int32_t>(tokens, {B, T}), Tensor::from_vector<int32_t>(targets, {B, T}));
  EXPECT_NEAR(loss.item<double>(), reference_loss(c, params, tokens, targets, B, T), 1e-5);
  loss.backward();

  for (auto& p : model.named_parameters()) {
    auto loss_of = [&](const std::vector<double>& x) {
      Params perturbed = params;
      perturbed[p.name] = x;
      return reference_loss(c, perturbed, tokens, targets, B, T);
    };
    testing::expect_close(testing::as_double(p.tensor.grad()),
                          reference::finite_difference_gradient(loss_of, params[p.name]), p.name);
  }
}

}  // namespace
}  // namespace meridian::models

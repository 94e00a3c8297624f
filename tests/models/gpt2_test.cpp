// GPT-2 as published: parameter count, names, initialisation, padded vocabulary, recompute.
#include "models/gpt2.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/init.h"

namespace meridian::models {
namespace {

Gpt2Config tiny_config() {
  Gpt2Config c;
  c.max_seq_len = 16;
  c.vocab_size = 37;  // deliberately not a multiple of anything
  c.padded_vocab_size = 48;
  c.num_layers = 2;
  c.num_heads = 2;
  c.channels = 8;
  return c;
}

Tensor tokens_of(std::vector<int32_t> values, int64_t B, int64_t T) {
  return Tensor::from_vector<int32_t>(values, {B, T});
}

TEST(Gpt2, Has124MParametersLikeLlmc) {
  // llm.c's train_gpt2 prints num_parameters: 124475904 for the padded 124M model.
  EXPECT_EQ(Gpt2Config::preset("gpt2-124m").num_parameters(), 124475904);
  Gpt2 model(tiny_config());
  EXPECT_EQ(model.num_parameters(), tiny_config().num_parameters());
}

TEST(Gpt2, NamesParametersHierarchically) {
  Gpt2 model(tiny_config());
  const auto params = model.named_parameters();
  ASSERT_EQ(params.size(), 2u + 12u * 2u + 2u);
  EXPECT_EQ(params.front().name, "wte.weight");
  EXPECT_EQ(params[1].name, "wpe.weight");
  EXPECT_EQ(params[2].name, "h.0.ln_1.weight");
  EXPECT_EQ(params[4].name, "h.0.attn.c_attn.weight");
  EXPECT_EQ(params.back().name, "ln_f.bias");
  EXPECT_EQ(params[4].tensor.name(), "h.0.attn.c_attn.weight");
  EXPECT_TRUE(params[4].weight_decay);
  EXPECT_FALSE(params[5].weight_decay);  // c_attn.bias
}

TEST(Gpt2, RejectsHeadsThatDoNotDivideChannels) {
  Gpt2Config c = tiny_config();
  c.num_heads = 3;
  EXPECT_THROW(c.validate(), Error);
  EXPECT_THROW(Gpt2 model(c), Error);
}

TEST(Gpt2, InitialisesAsGpt2WithZeroPaddedRows) {
  Gpt2Config c = Gpt2Config::preset("gpt-mini");
  c.vocab_size = 200;  // padded to 256
  c.padded_vocab_size = 256;
  Gpt2 model(c);
  model.initialize(7);
  for (const auto& p : model.named_parameters()) {
    const std::vector<float> v = p.tensor.to_float_vector();
    if (p.name == "wte.weight") {
      for (int64_t row = c.vocab_size; row < c.padded_vocab_size; ++row)
        for (int64_t j = 0; j < c.channels; ++j) ASSERT_EQ(v[static_cast<size_t>(row * c.channels + j)], 0.0f);
      continue;
    }
    if (p.init.kind != InitKind::normal) continue;
    double sq = 0.0;
    for (float x : v) sq += static_cast<double>(x) * x;
    const double std = std::sqrt(sq / static_cast<double>(v.size()));
    const bool residual = p.name.find("c_proj.weight") != std::string::npos;
    const double expected = residual ? 0.02 / std::sqrt(2.0 * static_cast<double>(c.num_layers)) : 0.02;
    EXPECT_NEAR(std, expected, 0.05 * expected) << p.name;
  }
}

TEST(Gpt2, InitialisationIsLayoutIndependent) {
  // A shard initialised on its own equals the matching slice of the whole tensor.
  Tensor whole = Tensor::zeros({12, 10});
  initialize(whole, InitSpec::normal(0.02f), 99, "h.0.mlp.c_fc.weight");
  Tensor shard = Tensor::zeros({6, 4});
  ShardSpec spec{{12, 10}, {6, 3}};
  initialize(shard, InitSpec::normal(0.02f), 99, "h.0.mlp.c_fc.weight", &spec);
  const std::vector<float> w = whole.to_float_vector(), s = shard.to_float_vector();
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t col = 0; col < 4; ++col) EXPECT_EQ(s[static_cast<size_t>(r * 4 + col)], w[static_cast<size_t>((6 + r) * 10 + 3 + col)]);
}

TEST(Gpt2, LossAtInitIsNearLogVocab) {
  Gpt2 model(tiny_config());
  model.initialize(1);
  std::vector<int32_t> ids(2 * 16), targets(2 * 16);
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<int32_t>((i * 7) % 37);
    targets[i] = static_cast<int32_t>((i * 11 + 3) % 37);
  }
  const float loss = model.loss(tokens_of(ids, 2, 16), tokens_of(targets, 2, 16)).item<float>();
  EXPECT_NEAR(loss, std::log(37.0), 0.1);
}

TEST(Gpt2, PaddedRowsGetNoGradient) {
  Gpt2 model(tiny_config());
  model.initialize(3);
  std::vector<int32_t> ids(16), targets(16);
  for (size_t i = 0; i < 16; ++i) {
    ids[i] = static_cast<int32_t>(i * 2);
    targets[i] = static_cast<int32_t>(36 - i);
  }
  model.loss(tokens_of(ids, 1, 16), tokens_of(targets, 1, 16)).backward();
  const Tensor wte = model.named_parameters().front().tensor;  // a handle: the list is a temporary
  const std::vector<float> g = wte.grad().to_float_vector();
  for (int64_t row = 37; row < 48; ++row)
    for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(g[static_cast<size_t>(row * 8 + j)], 0.0f);
}

TEST(Gpt2, RecomputeGivesIdenticalGradients) {
  std::vector<int32_t> ids(2 * 8), targets(2 * 8);
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<int32_t>((i * 5 + 1) % 37);
    targets[i] = static_cast<int32_t>((i * 3 + 2) % 37);
  }
  auto grads = [&](bool recompute, float& loss) {
    Gpt2 model(tiny_config());
    model.initialize(5);
    Tensor l = model.loss(tokens_of(ids, 2, 8), tokens_of(targets, 2, 8), recompute);
    loss = l.item<float>();
    l.backward();
    std::vector<std::vector<float>> out;
    for (const auto& p : model.parameters()) out.push_back(p.grad().to_float_vector());
    return out;
  };
  float plain_loss = 0, recompute_loss = 0;
  const auto plain = grads(false, plain_loss);
  const auto recomputed = grads(true, recompute_loss);
  EXPECT_EQ(plain_loss, recompute_loss);
  ASSERT_EQ(plain.size(), recomputed.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(plain[i], recomputed[i]) << "parameter " << i;
}

TEST(Gpt2, RejectsSequencesLongerThanMaxSeqLen) {
  Gpt2 model(tiny_config());
  std::vector<int32_t> ids(17, 1);
  EXPECT_THROW(model.forward(tokens_of(ids, 1, 17)), Error);
}

}  // namespace
}  // namespace meridian::models

namespace meridian::models {
namespace {

TEST(Gpt2Stages, StagesChainToTheWholeModel) {
  // Two stages built from the same seed compute exactly what the whole model computes.
  Gpt2Config c = tiny_config();
  Gpt2 whole(c);
  Gpt2 first(c, {0, 1, true, false});
  Gpt2 last(c, {1, 1, false, true});
  for (Gpt2* m : {&whole, &first, &last}) m->initialize(21);
  EXPECT_EQ(first.named_parameters().back().name, "h.0.mlp.c_proj.bias");
  EXPECT_EQ(last.named_parameters()[1].name, "h.1.ln_1.weight");
  EXPECT_EQ(last.tied_embedding().to_float_vector(), whole.tied_embedding().to_float_vector());
  std::vector<int32_t> ids(2 * 8), targets(2 * 8);
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<int32_t>((i * 5 + 1) % 37);
    targets[i] = static_cast<int32_t>((i * 3 + 2) % 37);
  }
  const Tensor tokens = tokens_of(ids, 2, 8), target = tokens_of(targets, 2, 8);
  const float want = whole.loss(tokens, target).item<float>();
  const float got = last.head_loss(last.run_blocks(first.run_blocks(first.embed(tokens))), target).item<float>();
  EXPECT_EQ(got, want);
  EXPECT_THROW(first.loss(tokens, target), Error);
  EXPECT_THROW(Gpt2(c, {1, 2, false, true}), Error);
}

}  // namespace
}  // namespace meridian::models

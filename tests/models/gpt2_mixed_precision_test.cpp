// GPT-2 under bf16 mixed precision on the cpu: fp32 parameters (the master weights) and gradients,
// bf16 activations and logits, and a loss curve that tracks the f32 model's to bf16 precision.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <vector>

#include "core/functions/working_copies.h"
#include "core/optim/optimizer.h"
#include "models/gpt2.h"

namespace meridian::models {
namespace {

Gpt2Config small_config() {
  Gpt2Config c;
  c.max_seq_len = 32;
  c.vocab_size = 61;
  c.padded_vocab_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.channels = 64;
  return c;
}

// A deterministic batch: a few repeating patterns the model can learn within 20 steps.
std::pair<Tensor, Tensor> batch_for(int step) {
  const int64_t B = 4, T = 24;
  std::vector<int32_t> inputs(B * T), targets(B * T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t <= T; ++t) {
      const int32_t token = static_cast<int32_t>((b * 7 + (t + step) * (b + 2)) % 61);
      if (t < T) inputs[b * T + t] = token;
      if (t > 0) targets[b * T + t - 1] = token;
    }
  return {Tensor::from_vector(inputs, {B, T}), Tensor::from_vector(targets, {B, T})};
}

std::vector<double> train(DType dtype, int steps) {
  Gpt2 model(small_config());
  model.initialize(11);
  model.set_compute_dtype(dtype);
  optim::AdamW adam(optim::optimizer_params(model.named_parameters()), {0.9f, 0.95f, 1e-8f, 0.0f});
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    adam.zero_grad();
    const auto [inputs, targets] = batch_for(step);
    const Tensor loss = model.loss(inputs, targets);
    EXPECT_EQ(loss.dtype(), DType::f32);
    loss.backward();
    std::vector<Tensor> grads;
    for (const auto& p : adam.params()) {
      EXPECT_EQ(p.param.dtype(), DType::f32) << p.name;
      EXPECT_EQ(p.param.grad().dtype(), DType::f32) << p.name;
      grads.push_back(p.param.grad());
    }
    adam.step(3e-3f, optim::clip_coefficient(optim::global_grad_norm(grads), 1.0));
    losses.push_back(loss.item<double>());
  }
  return losses;
}

TEST(Gpt2MixedPrecision, ActivationsAndLogitsAreBf16OnFp32Weights) {
  Gpt2 model(small_config());
  model.initialize(11);
  model.set_compute_dtype(DType::bf16);
  const auto [inputs, targets] = batch_for(0);
  const Tensor hidden = model.embed(inputs);
  EXPECT_EQ(hidden.dtype(), DType::bf16);
  EXPECT_EQ(model.logits(model.run_blocks(hidden)).dtype(), DType::bf16);
  for (const auto& p : model.named_parameters()) EXPECT_EQ(p.tensor.dtype(), DType::f32) << p.name;
  EXPECT_THROW(model.set_compute_dtype(DType::i32), Error);
}

TEST(Gpt2MixedPrecision, LossCurveTracksF32Over20Steps) {
  const std::vector<double> f32 = train(DType::f32, 20);
  const std::vector<double> bf16 = train(DType::bf16, 20);
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_NEAR(bf16[i], f32[i], 1e-2) << "step " << i;
  EXPECT_LT(bf16.back(), bf16.front() - 0.5);  // and it learns
}

// Gradient accumulation over two micro-batches with recompute, with and without a WorkingCopies
// scope: the same gradients bit for bit, and inside the scope one conversion per master weight.
std::vector<std::vector<float>> accumulated_gradients(bool working_copies, int64_t* conversions) {
  Gpt2 model(small_config());
  model.initialize(11);
  model.set_compute_dtype(DType::bf16);
  std::optional<fn::WorkingCopies> scope;
  if (working_copies) scope.emplace();
  for (int micro = 0; micro < 2; ++micro) {
    const auto [inputs, targets] = batch_for(micro);
    model.loss(inputs, targets, /*recompute=*/true).backward();
  }
  if (scope) *conversions = scope->conversions();
  std::vector<std::vector<float>> grads;
  for (const auto& p : model.named_parameters()) grads.push_back(p.tensor.grad().to_float_vector());
  return grads;
}

TEST(Gpt2MixedPrecision, WorkingCopiesConvertEachWeightOncePerStepWithTheSameGradients) {
  int64_t conversions = 0;
  const std::vector<std::vector<float>> per_use = accumulated_gradients(false, nullptr);
  const std::vector<std::vector<float>> cached = accumulated_gradients(true, &conversions);
  ASSERT_EQ(per_use.size(), cached.size());
  for (size_t i = 0; i < per_use.size(); ++i) EXPECT_EQ(per_use[i], cached[i]) << "gradient " << i;
  // Every parameter but the position embedding, whose rows join the f32 token embedding before the
  // one cast; the tied token embedding once, for the head. Two micro-batches, each forward run twice
  // (recompute): without the scope that would be four conversions of each.
  Gpt2 model(small_config());
  EXPECT_EQ(conversions, static_cast<int64_t>(model.named_parameters().size()) - 1);
}

}  // namespace
}  // namespace meridian::models

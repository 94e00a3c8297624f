// Deferred weight gradients (the B/W split of zero-bubble pipeline schedules): the B pass gives the
// input gradients of a normal backward, the W pass adds the linear layers' weight gradients, and
// together they give exactly the normal backward's bits — with and without recompute.
#include "core/autograd/weight_grad_store.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/autograd/engine.h"
#include "core/functions/functions.h"
#include "core/nn/layers.h"
#include "core/tensor.h"

namespace meridian {
namespace {

constexpr int64_t kBatch = 2, kSeq = 5, kChannels = 8, kHeads = 2;

std::shared_ptr<nn::Block> make_block(uint64_t seed) {
  auto block = std::make_shared<nn::Block>(kChannels, kHeads, 0.2f, 0.1f);
  block->assign_parameter_names();
  block->initialize(seed);
  // Non-zero biases and norm parameters, so that every gradient is exercised.
  for (const auto& p : block->named_parameters())
    if (p.tensor.ndim() == 1) {
      float* values = p.tensor.data<float>();
      for (int64_t i = 0; i < p.tensor.numel(); ++i) values[i] += 0.01f * static_cast<float>(i % 7) - 0.02f;
    }
  return block;
}

Tensor input(uint64_t seed) {
  std::vector<float> values(static_cast<size_t>(kBatch * kSeq * kChannels));
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>((i * 37 + seed * 11) % 19) / 10.0f - 0.9f;
  Tensor x = Tensor::from_vector<float>(values, {kBatch, kSeq, kChannels});
  x.set_requires_grad(true);
  return x;
}

Tensor output_gradient(const Tensor& output) {
  std::vector<float> values(static_cast<size_t>(output.numel()));
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>((i * 13) % 11) / 7.0f - 0.7f;
  return Tensor::from_vector<float>(values, output.shape());
}

std::map<std::string, std::vector<float>> grads_of(const nn::Module& module) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& p : module.named_parameters())
    out[p.name] = p.tensor.grad().defined() ? p.tensor.grad().to_float_vector()
                                            : std::vector<float>(static_cast<size_t>(p.tensor.numel()), 0.0f);
  return out;
}

class DeferredWeightGrads : public ::testing::TestWithParam<bool> {};

TEST_P(DeferredWeightGrads, EqualTheNormalBackwardBitForBit) {
  const bool recompute = GetParam();
  auto normal_block = make_block(5), split_block = make_block(5);
  Tensor normal_x = input(1), split_x = input(1);

  // Two micro-batches accumulate, as in a pipeline step.
  for (int micro = 0; micro < 2; ++micro) {
    Tensor out = normal_block->forward(normal_x, recompute);
    autograd::run_backward(out, output_gradient(out));
  }

  autograd::WeightGradStore store;
  for (int micro = 0; micro < 2; ++micro) {
    Tensor out = split_block->forward(split_x, recompute);
    autograd::DeferWeightGrads defer(store);
    autograd::run_backward(out, output_gradient(out));
  }
  // After the B passes: input gradients complete; linear weights and biases still without gradient
  // (4 linear layers per block, two passes); layer norms computed theirs during B.
  EXPECT_EQ(split_x.grad().to_float_vector(), normal_x.grad().to_float_vector());
  EXPECT_EQ(store.size(), 8u);
  const auto after_b = grads_of(*split_block);
  for (const auto& [name, grad] : after_b) {
    const bool linear = name.find("c_attn") != std::string::npos || name.find("c_proj") != std::string::npos ||
                        name.find("c_fc") != std::string::npos;
    if (linear) {
      EXPECT_EQ(grad, std::vector<float>(grad.size(), 0.0f)) << name << " before the W pass";
    } else {
      EXPECT_EQ(grad, grads_of(*normal_block).at(name)) << name;
    }
  }

  store.run();
  EXPECT_TRUE(store.empty());
  const auto want = grads_of(*normal_block);
  for (const auto& [name, grad] : grads_of(*split_block)) EXPECT_EQ(grad, want.at(name)) << name;
}

INSTANTIATE_TEST_SUITE_P(Recompute, DeferredWeightGrads, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? "with_recompute" : "without_recompute";
                         });

TEST(DeferredWeightGrads, LeaveANonLeafWeightToTheNormalPass) {
  // The weight is computed from a leaf, so its gradient must flow on to that leaf during the pass.
  Tensor w = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  w.set_requires_grad(true);
  Tensor x = Tensor::from_vector<float>({1, -1, 2}, {1, 3});
  Tensor y = fn::sum(fn::linear(x, fn::scale(w, 2.0f)));
  autograd::WeightGradStore store;
  {
    autograd::DeferWeightGrads defer(store);
    y.backward();
  }
  EXPECT_TRUE(store.empty());
  EXPECT_EQ(w.grad().to_float_vector(), (std::vector<float>{2, -2, 4, 2, -2, 4}));
}

TEST(DeferredWeightGrads, ScopesNestAndEnd) {
  EXPECT_EQ(autograd::deferred_weight_grads(), nullptr);
  autograd::WeightGradStore outer, inner;
  {
    autograd::DeferWeightGrads a(outer);
    EXPECT_EQ(autograd::deferred_weight_grads(), &outer);
    {
      autograd::DeferWeightGrads b(inner);
      EXPECT_EQ(autograd::deferred_weight_grads(), &inner);
    }
    EXPECT_EQ(autograd::deferred_weight_grads(), &outer);
  }
  EXPECT_EQ(autograd::deferred_weight_grads(), nullptr);
}

}  // namespace
}  // namespace meridian

// The functions that fuse GELU with products, on the cpu, against their compositions bit for bit —
// output and every gradient — for f32 and for bf16 activations on fp32 master weights (the cpu runs
// the same kernels in the same order, rounding as the composition does): fn::linear_gelu is
// gelu(linear(...)), fn::mlp is linear(linear_gelu(...)), with and without biases. Under
// DeferWeightGrads their weight gradients wait for the store. The GPU's fused epilogues are checked
// against these in tests/cuda/.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/autograd/weight_grad_store.h"
#include "core/error.h"
#include "core/functions/functions.h"
#include "core/tensor.h"
#include "tensor_testing.h"

namespace meridian {
namespace {

// Inputs over [-2, 2], where GELU bends.
Tensor random_tensor(const Shape& shape, std::mt19937& rng) { return testing::random_tensor(shape, rng, -2.0f, 2.0f); }
using testing::leaf;

void expect_same_bits(const Tensor& actual, const Tensor& expected, const std::string& what) {
  ASSERT_TRUE(actual.defined() && expected.defined()) << what;
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
  EXPECT_EQ(actual.to_float_vector(), expected.to_float_vector()) << what;
}

void check(DType activation_dtype, bool with_bias) {
  const std::string label = std::string(dtype_name(activation_dtype)) + (with_bias ? " with bias" : " without bias");
  std::mt19937 rng(17);
  const Tensor x_values = random_tensor({2, 13, 24}, rng).to(activation_dtype);
  const Tensor w_values = random_tensor({37, 24}, rng), b_values = random_tensor({37}, rng);
  const Tensor upstream = random_tensor({2, 13, 37}, rng).to(activation_dtype);

  const Tensor x1 = leaf(x_values.clone()), w1 = leaf(w_values.clone()), b1 = leaf(b_values.clone());
  const Tensor x2 = leaf(x_values.clone()), w2 = leaf(w_values.clone()), b2 = leaf(b_values.clone());
  const Tensor fused = fn::linear_gelu(x1, w1, with_bias ? b1 : Tensor());
  const Tensor composed = fn::gelu(fn::linear(x2, w2, with_bias ? b2 : Tensor()));
  expect_same_bits(fused, composed, label + ": output");
  fused.backward(upstream);
  composed.backward(upstream);
  expect_same_bits(x1.grad(), x2.grad(), label + ": input gradient");
  expect_same_bits(w1.grad(), w2.grad(), label + ": weight gradient");
  if (with_bias) expect_same_bits(b1.grad(), b2.grad(), label + ": bias gradient");
}

TEST(LinearGelu, MatchesTheCompositionBitForBit) {
  check(DType::f32, true);
  check(DType::f32, false);
  check(DType::bf16, true);
}

TEST(LinearGelu, DefersWeightGradientsLikeLinear) {
  std::mt19937 rng(5);
  const Tensor x_values = random_tensor({7, 16}, rng), w_values = random_tensor({9, 16}, rng);
  const Tensor x1 = leaf(x_values.clone()), w1 = leaf(w_values.clone());
  const Tensor x2 = leaf(x_values.clone()), w2 = leaf(w_values.clone());
  fn::sum(fn::linear_gelu(x1, w1)).backward();

  autograd::WeightGradStore store;
  {
    autograd::DeferWeightGrads defer(store);
    fn::sum(fn::linear_gelu(x2, w2)).backward();
  }
  expect_same_bits(x2.grad(), x1.grad(), "input gradient (computed during backward)");
  EXPECT_FALSE(w2.grad().defined()) << "the weight gradient waits for the store";
  ASSERT_EQ(store.size(), 1u);
  store.run();
  expect_same_bits(w2.grad(), w1.grad(), "weight gradient (after the store ran)");
}

TEST(LinearGelu, ShapeErrorsNameTheFunction) {
  const Tensor x = Tensor::zeros({3, 5}), w = Tensor::zeros({4, 6});
  try {
    fn::linear_gelu(x, w);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear_gelu: input of shape"), std::string::npos) << e.what();
  }
}

// The MLP's five inputs as fresh leaves (x in the activation dtype, parameters in f32).
struct Inputs {
  Tensor x, fc_weight, fc_bias, proj_weight, proj_bias;
};

Inputs fresh(const Inputs& values) {
  return {leaf(values.x.clone()), leaf(values.fc_weight.clone()), leaf(values.fc_bias.clone()),
          leaf(values.proj_weight.clone()), leaf(values.proj_bias.clone())};
}

Inputs random_inputs(DType activation_dtype, std::mt19937& rng) {
  return {random_tensor({2, 13, 24}, rng).to(activation_dtype), random_tensor({40, 24}, rng), random_tensor({40}, rng),
          random_tensor({24, 40}, rng), random_tensor({24}, rng)};
}

void expect_same_gradients(const Inputs& actual, const Inputs& expected, bool with_biases, const std::string& label) {
  expect_same_bits(actual.x.grad(), expected.x.grad(), label + ": input gradient");
  expect_same_bits(actual.fc_weight.grad(), expected.fc_weight.grad(), label + ": c_fc weight gradient");
  expect_same_bits(actual.proj_weight.grad(), expected.proj_weight.grad(), label + ": c_proj weight gradient");
  if (!with_biases) return;
  expect_same_bits(actual.fc_bias.grad(), expected.fc_bias.grad(), label + ": c_fc bias gradient");
  expect_same_bits(actual.proj_bias.grad(), expected.proj_bias.grad(), label + ": c_proj bias gradient");
}

void check_mlp(DType activation_dtype, bool with_biases) {
  const std::string label = std::string(dtype_name(activation_dtype)) + (with_biases ? " with biases" : " without");
  std::mt19937 rng(17);
  const Inputs values = random_inputs(activation_dtype, rng);
  const Tensor upstream = random_tensor({2, 13, 24}, rng).to(activation_dtype);
  const Inputs a = fresh(values), b = fresh(values);
  const auto bias = [with_biases](const Tensor& t) { return with_biases ? t : Tensor(); };
  const Tensor fused = fn::mlp(a.x, a.fc_weight, bias(a.fc_bias), a.proj_weight, bias(a.proj_bias));
  const Tensor composed =
      fn::linear(fn::linear_gelu(b.x, b.fc_weight, bias(b.fc_bias)), b.proj_weight, bias(b.proj_bias));
  expect_same_bits(fused, composed, label + ": output");
  fused.backward(upstream);
  composed.backward(upstream);
  expect_same_gradients(a, b, with_biases, label);
}

TEST(Mlp, MatchesTheCompositionBitForBit) {
  check_mlp(DType::f32, true);
  check_mlp(DType::f32, false);
  check_mlp(DType::bf16, true);
}

TEST(Mlp, DefersBothWeightGradientsLikeLinear) {
  std::mt19937 rng(5);
  const Inputs values = random_inputs(DType::f32, rng);
  const Inputs now = fresh(values), later = fresh(values);
  fn::sum(fn::mlp(now.x, now.fc_weight, now.fc_bias, now.proj_weight, now.proj_bias)).backward();

  autograd::WeightGradStore store;
  {
    autograd::DeferWeightGrads defer(store);
    fn::sum(fn::mlp(later.x, later.fc_weight, later.fc_bias, later.proj_weight, later.proj_bias)).backward();
  }
  expect_same_bits(later.x.grad(), now.x.grad(), "input gradient (computed during backward)");
  EXPECT_FALSE(later.fc_weight.grad().defined()) << "c_fc's weight gradient waits for the store";
  EXPECT_FALSE(later.proj_weight.grad().defined()) << "c_proj's weight gradient waits for the store";
  ASSERT_EQ(store.size(), 2u);
  store.run();
  expect_same_gradients(later, now, true, "after the store ran");
}

TEST(Mlp, ShapeErrorsNameTheProduct) {
  const Tensor x = Tensor::zeros({3, 5}), fc = Tensor::zeros({8, 5}), proj = Tensor::zeros({5, 7});
  try {
    fn::mlp(x, fc, Tensor(), proj);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mlp (c_proj): input of shape [3, 8] does not end in 7"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace meridian

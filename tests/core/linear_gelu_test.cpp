// fn::linear_gelu on the cpu is gelu(linear(...)) bit for bit — output and every gradient — for f32,
// and for bf16 activations on fp32 master weights (the cpu runs the same two kernels in the same
// order, rounding the GELU's input to the compute dtype as the composition does). The GPU's fused
// epilogue is checked against this in tests/cuda/.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/autograd/weight_grad_store.h"
#include "core/error.h"
#include "core/functions/functions.h"
#include "core/tensor.h"

namespace meridian {
namespace {

Tensor random_tensor(const Shape& shape, std::mt19937& rng) {
  std::uniform_real_distribution<float> distribution(-2.0f, 2.0f);
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (float& v : values) v = distribution(rng);
  return Tensor::from_vector(values, shape);
}

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

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

}  // namespace
}  // namespace meridian

// bf16 compute on the cpu (mixed precision): every differentiable function on bf16 activations and
// fp32 master weights keeps the bf16 contract exactly — its result is the fp32 computation on the
// bf16-rounded operands, each bf16 output rounded once to nearest even, and the master weights'
// gradients are that fp32 computation unrounded. These tests check the contract bit for bit against
// the f32 functions on rounded operands, and that bf16 stays within bf16 precision of plain f32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/functions/functions.h"
#include "core/tensor.h"
#include "tensor_testing.h"

namespace meridian {
namespace {

using testing::random_tensor;
using testing::leaf;

Tensor rounded(const Tensor& t) { return t.to(DType::bf16).to(DType::f32); }

void expect_equal(const Tensor& actual, const Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
  const std::vector<float> a = actual.to_float_vector(), e = expected.to_float_vector();
  int reported = 0;
  for (size_t i = 0; i < e.size(); ++i)
    if (!(a[i] == e[i]) && reported++ < 5) ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs " << e[i];
}

enum class Role { activation, master_weight, constant };

struct Input {
  Tensor values;  // f32 values (constants: any dtype, passed as they are)
  Role role;
};

// |actual − expected| ≤ 1e-2 · max |expected|: bf16 precision (8 significant bits) relative to the
// tensor's scale.
void expect_within_bf16(const Tensor& actual, const Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  const std::vector<float> a = actual.to_float_vector(), e = expected.to_float_vector();
  double scale = 0.0;
  for (float v : e) scale = std::max(scale, static_cast<double>(std::abs(v)));
  int reported = 0;
  for (size_t i = 0; i < e.size(); ++i)
    if (!(std::abs(a[i] - e[i]) <= 1e-2 * scale) && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs " << e[i] << " (scale " << scale << ")";
}

enum class Gradients { exact, within_bf16 };

// Runs `function` twice: on bf16 activations and f32 master weights, and on f32 leaves holding the
// bf16-rounded values of both. Compares the output (rounded to its dtype) and every input gradient
// (an activation's rounded to bf16, a master weight's unrounded) bit for bit, or — for a function whose
// backward reads its own bf16 output — to bf16 precision.
void check_bf16_contract(const std::string& name, const std::vector<Input>& inputs,
                         const std::function<Tensor(const std::vector<Tensor>&)>& function, std::mt19937& rng,
                         Gradients gradients = Gradients::exact) {
  std::vector<Tensor> mixed, reference;
  for (const Input& input : inputs) {
    if (input.role == Role::constant) {
      mixed.push_back(input.values);
      reference.push_back(input.values);
    } else {
      mixed.push_back(leaf(input.role == Role::activation ? input.values.to(DType::bf16) : input.values));
      reference.push_back(leaf(rounded(input.values)));
    }
  }
  const Tensor out = function(mixed);
  const Tensor expected = function(reference);
  ASSERT_EQ(expected.dtype(), DType::f32);
  expect_equal(out, out.dtype() == DType::bf16 ? expected.to(DType::bf16) : expected, name + " forward");
  const Tensor upstream = rounded(random_tensor(expected.shape(), rng));
  out.backward(upstream.to(out.dtype()));
  expected.backward(upstream);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].role == Role::constant) continue;
    const std::string what = name + " gradient of input " + std::to_string(i);
    ASSERT_TRUE(mixed[i].grad().defined()) << what;
    if (gradients == Gradients::within_bf16)
      expect_within_bf16(mixed[i].grad(), reference[i].grad(), what);
    else if (inputs[i].role == Role::activation)
      expect_equal(mixed[i].grad(), reference[i].grad().to(DType::bf16), what + " (bf16)");
    else
      expect_equal(mixed[i].grad(), reference[i].grad(), what + " (fp32 master)");
  }
}

class MixedPrecision : public ::testing::Test {
 protected:
  std::mt19937 rng{20261125};
};

TEST_F(MixedPrecision, CastRoundsToNearestEvenAndConvertsTheGradientBack) {
  const Tensor x = leaf(Tensor::from_vector<float>({1.0f, 1.00390625f, 1.01171875f, -3.14159f}, {4}));
  const Tensor y = fn::cast(x, DType::bf16);
  ASSERT_EQ(y.dtype(), DType::bf16);
  // 1 + 2⁻⁸ is halfway between bf16 neighbours 1 and 1 + 2⁻⁷: ties go to the even one (1).
  EXPECT_EQ(y.to_float_vector(), (std::vector<float>{1.0f, 1.0f, 1.015625f, -3.140625f}));
  fn::sum(fn::scale(y, 3.0f)).backward();
  ASSERT_EQ(x.grad().dtype(), DType::f32);
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{3.0f, 3.0f, 3.0f, 3.0f}));
  EXPECT_TRUE(fn::cast(x, DType::f32).same_impl(x));  // no-op when the dtype is already right
  EXPECT_THROW(fn::cast(x, DType::i32), Error);
}

TEST_F(MixedPrecision, LinearOnMasterWeights) {
  check_bf16_contract("linear",
                      {{random_tensor({2, 19, 37}, rng), Role::activation},
                       {random_tensor({29, 37}, rng), Role::master_weight},
                       {random_tensor({29}, rng), Role::master_weight}},
                      [](const std::vector<Tensor>& in) { return fn::linear(in[0], in[1], in[2]); }, rng);
}

TEST_F(MixedPrecision, LayerNormOnMasterWeights) {
  check_bf16_contract("layer_norm",
                      {{random_tensor({3, 11, 45}, rng, -2.0f, 3.0f), Role::activation},
                       {random_tensor({45}, rng), Role::master_weight},
                       {random_tensor({45}, rng), Role::master_weight}},
                      [](const std::vector<Tensor>& in) { return fn::layer_norm(in[0], in[1], in[2]); }, rng);
}

TEST_F(MixedPrecision, ElementwiseFunctions) {
  check_bf16_contract("gelu", {{random_tensor({1031}, rng, -4.0f, 4.0f), Role::activation}},
                      [](const std::vector<Tensor>& in) { return fn::gelu(in[0]); }, rng);
  check_bf16_contract("add (broadcast)",
                      {{random_tensor({3, 7, 45}, rng), Role::activation}, {random_tensor({7, 45}, rng), Role::activation}},
                      [](const std::vector<Tensor>& in) { return fn::add(in[0], in[1]); }, rng);
  check_bf16_contract("scale", {{random_tensor({999}, rng), Role::activation}},
                      [](const std::vector<Tensor>& in) { return fn::scale(in[0], -0.37f); }, rng);
}

TEST_F(MixedPrecision, AttentionAndCrossEntropy) {
  // Backward reads the saved output O (D = rowsum(dO ∘ O)), which under bf16 is the rounded one, as
  // in the CUDA kernel; the f32 reference keeps O unrounded, so the gradients agree to bf16 precision.
  check_bf16_contract("causal_self_attention", {{random_tensor({2, 13, 3 * 24}, rng), Role::activation}},
                      [](const std::vector<Tensor>& in) { return fn::causal_self_attention(in[0], 3); }, rng,
                      Gradients::within_bf16);
  std::vector<int32_t> targets(2 * 9);
  for (size_t i = 0; i < targets.size(); ++i) targets[i] = static_cast<int32_t>((i * 7) % 50);
  targets[4] = -1;  // ignored
  check_bf16_contract("cross_entropy",
                      {{random_tensor({2, 9, 64}, rng, -3.0f, 3.0f), Role::activation},
                       {Tensor::from_vector(targets, {2, 9}), Role::constant}},
                      [](const std::vector<Tensor>& in) { return fn::cross_entropy(in[0], in[1], 50); }, rng);
}

TEST_F(MixedPrecision, ActivationUsedTwiceAccumulatesItsBf16Gradient) {
  // A residual: h feeds both the branch and the sum; its gradient is the sum of both paths.
  const Tensor x = leaf(random_tensor({4, 16}, rng));
  const Tensor w = leaf(random_tensor({16, 16}, rng));
  const Tensor h = fn::cast(x, DType::bf16);
  const Tensor out = fn::add(h, fn::linear(h, w));
  fn::sum(fn::cast(out, DType::f32)).backward();
  const Tensor xr = leaf(rounded(x));
  const Tensor wr = leaf(rounded(w));
  fn::sum(fn::add(xr, fn::linear(xr, wr))).backward();
  // Two bf16 contributions meet in h's gradient (each rounded), so compare to bf16 precision.
  const std::vector<float> got = x.grad().to_float_vector(), want = xr.grad().to_float_vector();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-2 * (1.0 + std::abs(want[i]))) << i;
  EXPECT_EQ(w.grad().dtype(), DType::f32);
}

TEST_F(MixedPrecision, StaysWithinBf16PrecisionOfF32) {
  // The whole point: bf16 is an approximation of f32 at ~3 significant digits.
  const Tensor x = random_tensor({8, 64}, rng), w = random_tensor({48, 64}, rng, -0.2f, 0.2f);
  const std::vector<float> f32 = fn::gelu(fn::linear(x, w)).to_float_vector();
  const std::vector<float> bf16 = fn::gelu(fn::linear(x.to(DType::bf16), w)).to_float_vector();
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_NEAR(bf16[i], f32[i], 1e-2 * (1.0 + std::abs(f32[i]))) << i;
}

TEST_F(MixedPrecision, MixingActivationDtypesIsAnErrorThatNamesTheFix) {
  const Tensor a = random_tensor({4}, rng).to(DType::bf16);
  const Tensor b = random_tensor({4}, rng);
  try {
    fn::add(a, b);
    FAIL() << "add of bf16 and f32 should throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fn::cast"), std::string::npos) << e.what();
  }
  EXPECT_THROW(fn::gelu(Tensor::zeros({3}, DType::i32)), Error);
}

}  // namespace
}  // namespace meridian

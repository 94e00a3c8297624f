// fn::WorkingCopies: inside a scope each f32 master weight is converted to the compute dtype once and
// that copy serves every use; results are the bits of converting at each use; the copies end with the
// scope, and an optimizer step inside one is refused.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/functions/functions.h"
#include "core/functions/working_copies.h"
#include "core/optim/optimizer.h"
#include "core/tensor.h"
#include "tensor_testing.h"

namespace meridian {
namespace {

using testing::leaf;
using testing::random_tensor;

struct Layer {
  Tensor weight, bias, ln_weight, ln_bias;
};

Layer make_layer(std::mt19937& rng) {
  return {leaf(random_tensor({5, 7}, rng)), leaf(random_tensor({5}, rng)), leaf(random_tensor({5}, rng, 0.5f, 1.5f)),
          leaf(random_tensor({5}, rng))};
}

// Two micro-batches through layer_norm(linear(x)) in bf16, gradients accumulated into the f32 masters.
std::vector<Tensor> two_micro_batches(const Layer& layer, std::mt19937& rng) {
  std::vector<Tensor> outputs;
  for (int micro = 0; micro < 2; ++micro) {
    const Tensor x = random_tensor({3, 7}, rng).to(DType::bf16);
    const Tensor y = fn::layer_norm(fn::linear(x, layer.weight, layer.bias), layer.ln_weight, layer.ln_bias);
    fn::sum(y).backward();
    outputs.push_back(y.detach());
  }
  return outputs;
}

void expect_same_bits(const Tensor& actual, const Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
  const std::vector<float> a = actual.to_float_vector(), e = expected.to_float_vector();
  ASSERT_EQ(a.size(), e.size()) << what;
  for (size_t i = 0; i < e.size(); ++i) EXPECT_EQ(a[i], e[i]) << what << "[" << i << "]";
}

TEST(WorkingCopies, ConvertEachMasterWeightOnceAndGiveTheBitsOfConvertingPerUse) {
  std::mt19937 rng(3), rng_scoped(3);
  const Layer plain = make_layer(rng);
  const std::vector<Tensor> expected = two_micro_batches(plain, rng);

  const Layer scoped = make_layer(rng_scoped);
  std::vector<Tensor> outputs;
  {
    const fn::WorkingCopies copies;
    outputs = two_micro_batches(scoped, rng_scoped);
    EXPECT_EQ(copies.conversions(), 4);  // weight, bias, ln weight, ln bias: once each over both micro-batches
    EXPECT_EQ(copies.bytes(), (35u + 5u + 5u + 5u) * 2u);
  }
  for (size_t i = 0; i < outputs.size(); ++i) expect_same_bits(outputs[i], expected[i], "output " + std::to_string(i));
  expect_same_bits(scoped.weight.grad(), plain.weight.grad(), "weight grad");
  expect_same_bits(scoped.bias.grad(), plain.bias.grad(), "bias grad");
  expect_same_bits(scoped.ln_weight.grad(), plain.ln_weight.grad(), "ln weight grad");
  expect_same_bits(scoped.ln_bias.grad(), plain.ln_bias.grad(), "ln bias grad");
  EXPECT_EQ(scoped.weight.grad().dtype(), DType::f32);
}

TEST(WorkingCopies, ShareOneCopyInsideAScopeAndConvertPerUseOutside) {
  std::mt19937 rng(5);
  const Tensor weight = leaf(random_tensor({4, 6}, rng));
  const Tensor outside_a = fn::detail::working_copy(weight, DType::bf16);
  const Tensor outside_b = fn::detail::working_copy(weight, DType::bf16);
  EXPECT_NE(outside_a.storage(), outside_b.storage());
  const fn::WorkingCopies copies;
  const Tensor inside_a = fn::detail::working_copy(weight, DType::bf16);
  const Tensor inside_b = fn::detail::working_copy(weight, DType::bf16);
  EXPECT_EQ(inside_a.storage(), inside_b.storage());
  EXPECT_EQ(inside_a.dtype(), DType::bf16);
  expect_same_bits(inside_a, outside_a, "copy");
  EXPECT_EQ(copies.conversions(), 1);
}

TEST(WorkingCopies, CacheOnlyTrainedParametersThatNeedAConversion) {
  std::mt19937 rng(7);
  const Tensor weight = leaf(random_tensor({4, 6}, rng));
  const Tensor frozen = random_tensor({4, 6}, rng);            // a leaf that does not require grad
  const Tensor computed = fn::scale(weight, 2.0f);              // not a leaf
  const fn::WorkingCopies copies;
  EXPECT_EQ(fn::detail::working_copy(weight, DType::f32).storage(), weight.storage());  // no conversion
  for (const Tensor* t : {&frozen, &computed, &weight}) {
    const Tensor a = fn::detail::working_copy(*t, DType::bf16), b = fn::detail::working_copy(*t, DType::bf16);
    EXPECT_EQ(a.storage() == b.storage(), t == &weight);
  }
  EXPECT_EQ(copies.conversions(), 1);
  EXPECT_FALSE(fn::detail::working_copy(Tensor(), DType::bf16).defined());  // an absent bias stays absent
}

TEST(WorkingCopies, NestedScopesShareTheOutermostCopies) {
  std::mt19937 rng(9);
  const Tensor weight = leaf(random_tensor({4, 6}, rng));
  const fn::WorkingCopies outer;
  Tensor inner_copy;
  {
    const fn::WorkingCopies inner;
    inner_copy = fn::detail::working_copy(weight, DType::bf16);
    EXPECT_EQ(inner.conversions(), 1);
  }
  EXPECT_TRUE(fn::working_copies_open());
  EXPECT_EQ(fn::detail::working_copy(weight, DType::bf16).storage(), inner_copy.storage());
  EXPECT_EQ(outer.conversions(), 1);
}

TEST(WorkingCopies, EndWithTheScopeSoANewScopeSeesChangedWeights) {
  std::mt19937 rng(11);
  const Tensor weight = leaf(random_tensor({4, 6}, rng));
  {
    const fn::WorkingCopies copies;
    (void)fn::detail::working_copy(weight, DType::bf16);
  }
  EXPECT_FALSE(fn::working_copies_open());
  weight.detach().copy_(random_tensor({4, 6}, rng));  // what an optimizer step does, between scopes
  const fn::WorkingCopies copies;
  expect_same_bits(fn::detail::working_copy(weight, DType::bf16), weight.to(DType::bf16), "after the change");
}

TEST(WorkingCopies, ConvertAgainAWeightMovedToOtherStorage) {
  std::mt19937 rng(13);
  Tensor weight = leaf(random_tensor({4, 6}, rng));
  const fn::WorkingCopies copies;
  const Tensor before = fn::detail::working_copy(weight, DType::bf16);
  // Parameter flattening moves a weight into a bucket (Tensor::rebind_storage); new values there
  // must not be hidden by the copy of the old storage.
  const Tensor bucket = Tensor::zeros({30});
  weight.rebind_storage(bucket.storage(), 3);
  weight.detach().copy_(random_tensor({4, 6}, rng));
  const Tensor after = fn::detail::working_copy(weight, DType::bf16);
  EXPECT_NE(after.storage(), before.storage());
  expect_same_bits(after, weight.to(DType::bf16), "after the move");
  EXPECT_EQ(copies.conversions(), 2);
  EXPECT_EQ(copies.bytes(), 24u * 2u);
}

TEST(WorkingCopies, AnOptimizerStepInsideAScopeIsRefused) {
  std::mt19937 rng(15);
  Tensor weight = leaf(random_tensor({4, 6}, rng));
  weight.set_grad(random_tensor({4, 6}, rng));
  optim::AdamW adam({{"w", weight, true}}, {});
  optim::Sgd sgd({{"w", weight, true}}, {});
  {
    const fn::WorkingCopies copies;
    try {
      adam.step(1e-3f);
      ADD_FAILURE() << "AdamW.step ran inside a WorkingCopies scope";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("AdamW.step: called inside an fn::WorkingCopies scope"), std::string::npos)
          << e.what();
    }
    EXPECT_THROW(sgd.step(1e-3f), Error);
  }
  EXPECT_NO_THROW(adam.step(1e-3f));
  EXPECT_EQ(adam.steps_taken(), 1);
}

}  // namespace
}  // namespace meridian

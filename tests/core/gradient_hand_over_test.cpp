// BackwardContext::hand_over_input_grad: a backward may give its freshly computed gradient to the
// engine as the input's whole gradient (no zero-fill, no read-modify-write; the GPU's fused
// classifier does) only when that cannot change any result: a non-leaf input with nothing
// accumulated yet, and a graph that is not retained. Every other case accumulates as before.
#include <gtest/gtest.h>

#include <vector>

#include "core/autograd/node.h"
#include "core/functions/functions.h"
#include "core/tensor.h"

namespace meridian {
namespace {

// y = 3·x whose backward offers a new tensor (3·dy) for hand-over and accumulates when refused;
// `handed_over` records each attempt's outcome.
Tensor tripled(const Tensor& x, std::vector<bool>& handed_over) {
  std::vector<float> values = x.to_float_vector();
  for (float& v : values) v *= 3.0f;
  Tensor out = Tensor::from_vector(values, x.shape());
  autograd::record("tripled", {x}, out, [&handed_over](autograd::BackwardContext& ctx) {
    std::vector<float> gradient = ctx.grad_output().to_float_vector();
    for (float& g : gradient) g *= 3.0f;
    const Tensor fresh = Tensor::from_vector(gradient, ctx.grad_output().shape());
    const bool done = ctx.hand_over_input_grad(0, fresh);
    handed_over.push_back(done);
    if (done) return;
    Tensor into = ctx.input_grad(0);
    std::vector<float> sum = into.to_float_vector();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += gradient[i];
    into.copy_(Tensor::from_vector(sum, into.shape()));
  });
  return out;
}

// s = x + y whose backward hands one new tensor, a copy of ds, to both inputs (a residual add's
// backward on the GPU does so with ds itself); `given` records where that tensor lies.
Tensor handed_to_both(const Tensor& x, const Tensor& y, const void** given) {
  std::vector<float> values = x.to_float_vector();
  const std::vector<float> other = y.to_float_vector();
  for (size_t i = 0; i < values.size(); ++i) values[i] += other[i];
  Tensor out = Tensor::from_vector(values, x.shape());
  autograd::record("handed_to_both", {x, y}, out, [given](autograd::BackwardContext& ctx) {
    const Tensor fresh = ctx.grad_output().clone();
    *given = fresh.raw_data();
    EXPECT_TRUE(ctx.hand_over_input_grad(0, fresh));
    EXPECT_TRUE(ctx.hand_over_input_grad(1, fresh));
  });
  return out;
}

// The identity, whose backward records where its gradient lies.
Tensor probe(const Tensor& x, const void** seen) {
  Tensor out = x.detach().clone();
  autograd::record("probe", {x}, out, [seen](autograd::BackwardContext& ctx) {
    *seen = ctx.grad_output().raw_data();
    const std::vector<float> gradient = ctx.grad_output().to_float_vector();
    Tensor into = ctx.input_grad(0);
    std::vector<float> sum = into.to_float_vector();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += gradient[i];
    into.copy_(Tensor::from_vector(sum, into.shape()));
  });
  return out;
}

Tensor leaf(std::vector<float> values) {
  Tensor t = Tensor::from_vector<float>(values, {static_cast<int64_t>(values.size())});
  t.set_requires_grad(true);
  return t;
}

TEST(GradientHandOver, GivesANonLeafItsWholeGradient) {
  std::vector<bool> handed_over;
  const Tensor x = leaf({1, 2});
  fn::sum(tripled(fn::scale(x, 2.0f), handed_over)).backward();
  EXPECT_EQ(handed_over, (std::vector<bool>{true}));
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{6, 6}));
}

TEST(GradientHandOver, LaterConsumersAddToTheHandedOverGradient) {
  // h feeds tripled (hand-over first: it runs first, as the later-created node) and a scale by 2.
  std::vector<bool> handed_over;
  const Tensor x = leaf({1, 2, 3});
  const Tensor h = fn::scale(x, 1.0f);
  const Tensor twice = fn::scale(h, 2.0f);
  fn::sum(fn::add(twice, tripled(h, handed_over))).backward();
  EXPECT_EQ(handed_over, (std::vector<bool>{true}));
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{5, 5, 5}));
}

TEST(GradientHandOver, RefusedWhenSomethingWasAccumulatedAlready) {
  // tripled is created first, so it runs after the scale by 2 has accumulated into h's slot.
  std::vector<bool> handed_over;
  const Tensor x = leaf({1, 2, 3});
  const Tensor h = fn::scale(x, 1.0f);
  const Tensor three = tripled(h, handed_over);
  fn::sum(fn::add(three, fn::scale(h, 2.0f))).backward();
  EXPECT_EQ(handed_over, (std::vector<bool>{false}));
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{5, 5, 5}));
}

TEST(GradientHandOver, RefusedForALeafAndWhenTheGraphIsRetained) {
  std::vector<bool> handed_over;
  const Tensor x = leaf({1});
  fn::sum(tripled(x, handed_over)).backward();  // a leaf: its .grad accumulates
  const Tensor y = fn::sum(tripled(fn::scale(x, 1.0f), handed_over));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_EQ(handed_over, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{9}));
}

TEST(GradientHandOver, OneGradientHandedToTwoInputsIsCopiedForTheFirstToAddToIt) {
  // Creation order sets the backward order (later first): handed_to_both gives g to x and y, then
  // the scale by 2 adds into x's gradient while y's consumer has not read g yet, so x's gradient
  // must move to a copy: y's probe still sees g itself, and only 1s.
  const void* given = nullptr;
  const void* seen_x = nullptr;
  const void* seen_y = nullptr;
  const Tensor p = leaf({1, 2});
  const Tensor y = probe(p, &seen_y);
  const Tensor x = probe(p, &seen_x);
  const Tensor twice = fn::scale(x, 2.0f);
  fn::sum(fn::add(handed_to_both(x, y, &given), twice)).backward();
  EXPECT_EQ(seen_y, given);
  EXPECT_NE(seen_x, given);
  EXPECT_EQ(p.grad().to_float_vector(), (std::vector<float>{4, 4}));  // x: 1 + 2, y: 1
}

TEST(GradientHandOver, AGradientSharedByTwoInputsIsAddedToInPlaceOnceTheOtherHasRun) {
  // y's consumer (the scale by 3) runs right after handed_to_both and lets go of g; the scale by 2
  // then adds into x's gradient in place, so x's probe sees g itself.
  const void* given = nullptr;
  const void* seen_x = nullptr;
  const Tensor p = leaf({1, 2});
  const Tensor x = probe(p, &seen_x);
  const Tensor twice = fn::scale(x, 2.0f);
  const Tensor y = fn::scale(p, 3.0f);
  fn::sum(fn::add(handed_to_both(x, y, &given), twice)).backward();
  EXPECT_EQ(seen_x, given);
  EXPECT_EQ(p.grad().to_float_vector(), (std::vector<float>{6, 6}));  // x: 1 + 2, y: 3
}

}  // namespace
}  // namespace meridian

// The engine's contract: reverse-topological order, accumulation into .grad, grad-ready hooks that
// fire exactly once per pass with the final gradient, and recompute that changes nothing but memory.
#include <gtest/gtest.h>

#include <vector>

#include "core/autograd/checkpoint.h"
#include "core/autograd/grad_mode.h"
#include "core/functions/functions.h"
#include "core/tensor.h"

namespace meridian {
namespace {

Tensor leaf(std::vector<float> values, const char* name) {
  Tensor t = Tensor::from_vector<float>(values, {static_cast<int64_t>(values.size())});
  t.set_requires_grad(true);
  t.set_name(name);
  return t;
}

TEST(Autograd, SumsGradientsOfATensorUsedTwice) {
  Tensor x = leaf({1, 2, 3}, "x");
  fn::sum(fn::add(x, x)).backward();
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{2, 2, 2}));
}

TEST(Autograd, AccumulatesAcrossBackwardPasses) {
  Tensor x = leaf({1, 2}, "x");
  fn::sum(fn::scale(x, 3.0f)).backward();
  fn::sum(fn::scale(x, 4.0f)).backward();
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{7, 7}));
}

TEST(Autograd, HookFiresOnceWithTheFinalGradient) {
  // p is used at the start and at the end of the graph (like a tied embedding and output head).
  Tensor p = leaf({1, 1}, "p");
  Tensor q = leaf({1, 1}, "q");
  std::vector<std::string> order;
  std::vector<float> p_grad_at_hook;
  p.register_grad_ready_hook([&](const Tensor& t) {
    order.push_back("p");
    p_grad_at_hook = t.grad().to_float_vector();
  });
  q.register_grad_ready_hook([&](const Tensor&) { order.push_back("q"); });
  Tensor h = fn::scale(p, 2.0f);
  h = fn::add(h, q);
  h = fn::scale(h, 5.0f);
  h = fn::add(h, p);
  fn::sum(h).backward();
  EXPECT_EQ(order, (std::vector<std::string>{"q", "p"}));  // q's gradient is final first
  EXPECT_EQ(p_grad_at_hook, (std::vector<float>{11, 11}));
  EXPECT_EQ(p.grad().to_float_vector(), (std::vector<float>{11, 11}));
}

TEST(Autograd, SecondBackwardNeedsRetainGraph) {
  Tensor x = leaf({1}, "x");
  Tensor y = fn::sum(fn::scale(x, 2.0f));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{4}));
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, ImplicitGradientOnlyForOneElement) {
  Tensor x = leaf({1, 2}, "x");
  EXPECT_THROW(fn::scale(x, 2.0f).backward(), Error);
}

TEST(Autograd, BackwardFromALeafAccumulatesIntoItsGrad) {
  Tensor x = leaf({5}, "x");
  x.backward();
  x.backward();
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{2}));
}

TEST(Autograd, SetGradChecksShapeAndDtype) {
  Tensor x = leaf({1, 2}, "x");
  EXPECT_THROW(x.set_grad(Tensor::zeros({3})), Error);
  EXPECT_THROW(x.set_grad(Tensor::zeros({2}, DType::bf16)), Error);
  x.set_grad(Tensor::zeros({2}));
}

TEST(Autograd, NoGradGuardStopsRecording) {
  Tensor x = leaf({1}, "x");
  Tensor y;
  {
    NoGradGuard guard;
    y = fn::scale(x, 2.0f);
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, CheckpointGivesTheSameGradientsAndHooksFireOnce) {
  auto run = [](bool recompute, int& hook_calls) {
    Tensor x = leaf({1, 2, 3}, "x");
    Tensor p = leaf({0.5f, -1.0f, 2.0f}, "p");
    p.register_grad_ready_hook([&](const Tensor&) { ++hook_calls; });
    auto block = [&](const Tensor& in) { return fn::scale(fn::add(fn::scale(in, 3.0f), p), 2.0f); };
    Tensor h = recompute ? autograd::checkpoint(block, fn::scale(x, 1.5f), {p}) : block(fn::scale(x, 1.5f));
    fn::sum(fn::add(h, p)).backward();  // p is also used outside the block
    return std::make_pair(x.grad().to_float_vector(), p.grad().to_float_vector());
  };
  int plain_calls = 0, recompute_calls = 0;
  const auto plain = run(false, plain_calls);
  const auto recomputed = run(true, recompute_calls);
  EXPECT_EQ(plain.first, recomputed.first);
  EXPECT_EQ(plain.second, recomputed.second);
  EXPECT_EQ(plain.second, (std::vector<float>{3, 3, 3}));
  EXPECT_EQ(plain_calls, 1);
  EXPECT_EQ(recompute_calls, 1);
}

}  // namespace
}  // namespace meridian

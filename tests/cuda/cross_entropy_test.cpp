// Fused classifier against the CPU twin (ops/cpu/cross_entropy.h): forward (losses, lse), backward
// (dlogits), and both in one kernel, for fp32 and bf16 logits. Padded columns hold large values, so
// any that leaked into the softmax would move the loss; their gradient must stay bit-for-bit as it
// was, as must the rows with an ignored (negative) target.
#include <gtest/gtest.h>

#include <cmath>

#include "cuda_test_support.h"
#include "ops/cpu/cross_entropy.h"
#include "ops/cuda/cross_entropy.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::kFloat32;
using testing::rounded_to;
using testing::TestStream;
using testing::to_element;
using testing::tolerance_for;

struct ClassifierShape {
  int64_t N, V, Vp;
  bool masked = false;  // some logits −∞ (a masked vocabulary), among them each thread's first column
};

struct ClassifierCase {
  std::vector<float> logits;  // rounded to the storage type
  std::vector<int32_t> targets;
  std::vector<float> dlosses;
  std::vector<float> dlogits_start;  // rounded to the storage type
  std::vector<float> losses, lse, dlogits;  // CPU reference
};

template <class Element>
ClassifierCase make_case(const ClassifierShape& s) {
  std::mt19937 rng(static_cast<unsigned>(s.V));
  ClassifierCase c;
  std::vector<float> logits = testing::random_floats(static_cast<size_t>(s.N * s.Vp), rng, -4.0f, 4.0f);
  for (int64_t i = 0; i < s.N; ++i) {
    for (int64_t j = s.V; j < s.Vp; ++j) logits[static_cast<size_t>(i * s.Vp + j)] = 50.0f;
  }
  std::uniform_int_distribution<int32_t> target(0, static_cast<int32_t>(s.V - 1));
  for (int64_t i = 0; i < s.N; ++i) c.targets.push_back(i % 5 == 3 ? -1 : target(rng));  // every 5th row ignored
  if (s.masked) {
    for (int64_t i = 0; i < s.N; ++i) {
      for (int64_t j = 0; j < s.V; j += 3) {
        if (j != c.targets[static_cast<size_t>(i)]) logits[static_cast<size_t>(i * s.Vp + j)] = -INFINITY;
      }
    }
  }
  c.logits = rounded_to<Element>(logits);
  c.dlosses = testing::random_floats(static_cast<size_t>(s.N), rng, 0.0f, 1.0f);
  c.dlogits_start = rounded_to<Element>(testing::random_floats(static_cast<size_t>(s.N * s.Vp), rng));
  c.losses.resize(static_cast<size_t>(s.N));
  c.lse.resize(static_cast<size_t>(s.N));
  c.dlogits = c.dlogits_start;
  cpu::cross_entropy_forward(c.losses.data(), c.lse.data(), c.logits.data(), c.targets.data(), s.N, s.V, s.Vp);
  cpu::cross_entropy_backward(c.dlogits.data(), c.dlosses.data(), c.logits.data(), c.lse.data(), c.targets.data(), s.N,
                              s.V, s.Vp);
  return c;
}

// Padded columns and ignored rows of dlogits are exactly as they started.
void expect_untouched(const std::vector<float>& dlogits, const ClassifierCase& c, const ClassifierShape& s) {
  int changed = 0;
  for (int64_t i = 0; i < s.N; ++i) {
    const int64_t first = c.targets[static_cast<size_t>(i)] < 0 ? 0 : s.V;
    for (int64_t j = first; j < s.Vp; ++j) {
      const size_t at = static_cast<size_t>(i * s.Vp + j);
      if (!(dlogits[at] == c.dlogits_start[at])) ++changed;
    }
  }
  EXPECT_EQ(changed, 0) << "dlogits elements changed in padded columns or ignored rows";
}

std::string describe(const ClassifierShape& s) {
  return "N=" + std::to_string(s.N) + " V=" + std::to_string(s.V) + " Vp=" + std::to_string(s.Vp) +
         (s.masked ? " masked" : "");
}

// The case's inputs on the device, with losses and lse poisoned; dlogits starts as dlogits_start.
template <class Element>
struct DeviceClassifier {
  DeviceBuffer<Element> logits;
  DeviceBuffer<int32_t> targets;
  DeviceBuffer<float> dlosses, losses, lse;
  DeviceBuffer<Element> dlogits;
  DeviceClassifier(const ClassifierCase& c, const ClassifierShape& s)
      : logits(to_element<Element>(c.logits)),
        targets(c.targets),
        dlosses(c.dlosses),
        losses(static_cast<size_t>(s.N)),
        lse(static_cast<size_t>(s.N)),
        dlogits(to_element<Element>(c.dlogits_start)) {
    losses.poison();
    lse.poison();
  }
  void expect_statistics(const ClassifierCase& c) const {
    expect_close(losses.download(), c.losses, kFloat32, "losses");
    expect_close(lse.download(), c.lse, kFloat32, "lse");
  }
};

template <class Element>
void check_separate_kernels(const ClassifierShape& s) {
  SCOPED_TRACE(describe(s));
  const ClassifierCase c = make_case<Element>(s);
  TestStream stream;
  DeviceClassifier<Element> d(c, s);
  cross_entropy_forward<Element>(d.losses.get(), d.lse.get(), d.logits.get(), d.targets.get(), s.N, s.V, s.Vp,
                                 stream.get());
  cross_entropy_backward<Element>(d.dlogits.get(), d.dlosses.get(), d.logits.get(), d.lse.get(), d.targets.get(), s.N,
                                  s.V, s.Vp, stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  d.expect_statistics(c);
  const std::vector<float> result = testing::to_float(d.dlogits.download());
  expect_close(result, c.dlogits, tolerance_for<Element>(), "dlogits");
  expect_untouched(result, c, s);
}

template <class Element>
void check_fused(const ClassifierShape& s) {
  SCOPED_TRACE(describe(s));
  const ClassifierCase c = make_case<Element>(s);
  TestStream stream;
  DeviceClassifier<Element> d(c, s);
  fused_classifier<Element>(d.losses.get(), d.lse.get(), d.dlogits.get(), d.dlosses.get(), d.logits.get(),
                            d.targets.get(), s.N, s.V, s.Vp, stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  d.expect_statistics(c);
  const std::vector<float> result = testing::to_float(d.dlogits.download());
  expect_close(result, c.dlogits, tolerance_for<Element>(), "dlogits");
  expect_untouched(result, c, s);
}

// overwrite = true (the engine's training step): dlogits starts poisoned and comes back as the
// gradient alone — the cpu's gradient added to zeros — with exact zeros in padded columns and
// ignored rows.
template <class Element>
void check_fused_overwrite(const ClassifierShape& s) {
  SCOPED_TRACE(describe(s));
  const ClassifierCase c = make_case<Element>(s);
  std::vector<float> expected(c.dlogits.size(), 0.0f);
  cpu::cross_entropy_backward(expected.data(), c.dlosses.data(), c.logits.data(), c.lse.data(), c.targets.data(), s.N,
                              s.V, s.Vp);
  TestStream stream;
  DeviceClassifier<Element> d(c, s);
  d.dlogits.poison();
  fused_classifier<Element>(d.losses.get(), d.lse.get(), d.dlogits.get(), d.dlosses.get(), d.logits.get(),
                            d.targets.get(), s.N, s.V, s.Vp, stream.get(), /*overwrite=*/true);
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  d.expect_statistics(c);
  const std::vector<float> result = testing::to_float(d.dlogits.download());
  expect_close(result, expected, tolerance_for<Element>(), "dlogits");
  int not_zero = 0;
  for (int64_t i = 0; i < s.N; ++i) {
    const int64_t first = c.targets[static_cast<size_t>(i)] < 0 ? 0 : s.V;
    for (int64_t j = first; j < s.Vp; ++j) not_zero += result[static_cast<size_t>(i * s.Vp + j)] != 0.0f;
  }
  EXPECT_EQ(not_zero, 0) << "padded columns or ignored rows not written as zeros";
}

const ClassifierShape kShapes[] = {
    {37, 1001, 1088},   // padded, neither a multiple of the 256-thread block
    {4, 50257, 50304},  // GPT-2's vocabulary
    {6, 7, 7},          // fewer columns than threads, no padding
};

TEST(CudaCrossEntropy, ForwardBackwardFp32) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const ClassifierShape& s : kShapes) check_separate_kernels<float>(s);
}

TEST(CudaCrossEntropy, ForwardBackwardBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const ClassifierShape& s : kShapes) check_separate_kernels<__nv_bfloat16>(s);
}

TEST(CudaCrossEntropy, FusedFp32) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const ClassifierShape& s : kShapes) check_fused<float>(s);
}

TEST(CudaCrossEntropy, FusedOverwriteFp32AndBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const ClassifierShape& s : kShapes) {
    check_fused_overwrite<float>(s);
    check_fused_overwrite<__nv_bfloat16>(s);
  }
}

// Logits of −∞ add nothing to the sum and get a zero gradient (no NaN from exp(−∞ − (−∞))).
TEST(CudaCrossEntropy, MinusInfinityLogits) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  const ClassifierShape masked{37, 1001, 1088, true};
  check_separate_kernels<float>(masked);
  check_fused<float>(masked);
  check_fused<__nv_bfloat16>(masked);
}

TEST(CudaCrossEntropy, FusedBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const ClassifierShape& s : kShapes) check_fused<__nv_bfloat16>(s);
}

}  // namespace
}  // namespace meridian::ops::cuda

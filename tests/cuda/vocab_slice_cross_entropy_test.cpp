// The vocabulary-slice cross-entropy kernels (ops/cuda/vocab_slice_cross_entropy.h, tensor
// parallelism's loss) against their CPU twins, for f32 and bf16 logits: three slices of a padded
// vocabulary (the last holding padding only past the real entries, one holding none), targets in
// and out of each slice, an ignored row; outputs poisoned first, dlogits accumulating onto random
// values. Tolerances: f32 1e-5, bf16 1e-2 (the kernels' fp32 arithmetic reads the same bf16 values
// the cpu widens; only the summation order differs, plus the one rounding of bf16 dlogits).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "cuda_test_support.h"
#include "ops/cpu/vocab_slice_cross_entropy.h"
#include "ops/cuda/vocab_slice_cross_entropy.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::rounded_to;
using testing::TestStream;
using testing::to_element;

template <class Element>
void check_slice(int64_t first, int64_t Vs, int64_t Vs_p, testing::Tolerance tolerance) {
  SCOPED_TRACE("first=" + std::to_string(first) + " Vs=" + std::to_string(Vs) + " Vs_p=" + std::to_string(Vs_p));
  constexpr int64_t N = 37;
  std::mt19937 rng(static_cast<unsigned>(first + Vs));
  const std::vector<float> logits = rounded_to<Element>(testing::random_floats(N * Vs_p, rng, -4.0f, 4.0f));
  const std::vector<float> dlogits_start = rounded_to<Element>(testing::random_floats(N * Vs_p, rng));
  std::vector<int32_t> targets(N);
  for (int64_t i = 0; i < N; ++i) targets[i] = static_cast<int32_t>((i * 53) % 300);  // whole vocabulary
  targets[3] = -1;                                                                     // ignored

  std::vector<float> row_max(N), sum_exp(N), target_logit(N);
  cpu::vocab_slice_row_max(row_max.data(), logits.data(), N, Vs, Vs_p);
  // The combined max of a real run would come from every slice; any finite value exercises sum_exp.
  std::vector<float> combined(N);
  for (int64_t i = 0; i < N; ++i) combined[i] = Vs > 0 ? row_max[i] : 1.5f;
  cpu::vocab_slice_sum_exp(sum_exp.data(), logits.data(), combined.data(), N, Vs, Vs_p);
  cpu::vocab_slice_target_logit(target_logit.data(), logits.data(), targets.data(), first, N, Vs, Vs_p);
  std::vector<float> lse(N), dlosses(N);
  for (int64_t i = 0; i < N; ++i) {
    lse[i] = combined[i] + 2.0f + 0.01f * static_cast<float>(i);  // any per-row value: backward takes it as given
    dlosses[i] = 0.5f + 0.01f * static_cast<float>(i);
  }
  std::vector<float> dlogits = dlogits_start;
  cpu::vocab_slice_cross_entropy_backward(dlogits.data(), dlosses.data(), logits.data(), lse.data(), targets.data(),
                                          first, N, Vs, Vs_p);

  TestStream stream;
  DeviceBuffer<Element> d_logits(to_element<Element>(logits)), d_dlogits(to_element<Element>(dlogits_start));
  DeviceBuffer<int32_t> d_targets(targets);
  DeviceBuffer<float> d_row_max(N), d_sum_exp(N), d_target_logit(N), d_combined(combined), d_lse(lse),
      d_dlosses(dlosses);
  d_row_max.poison();
  d_sum_exp.poison();
  d_target_logit.poison();
  vocab_slice_row_max(d_row_max.get(), d_logits.get(), N, Vs, Vs_p, stream.get());
  vocab_slice_sum_exp(d_sum_exp.get(), d_logits.get(), d_combined.get(), N, Vs, Vs_p, stream.get());
  vocab_slice_target_logit(d_target_logit.get(), d_logits.get(), d_targets.get(), first, N, Vs, Vs_p, stream.get());
  vocab_slice_cross_entropy_backward(d_dlogits.get(), d_dlosses.get(), d_logits.get(), d_lse.get(), d_targets.get(),
                                     first, N, Vs, Vs_p, stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  EXPECT_EQ(d_row_max.download(), row_max);  // a max is exact
  expect_close(d_sum_exp.download(), sum_exp, tolerance, "sum_exp");
  EXPECT_EQ(d_target_logit.download(), target_logit);  // a copied value is exact
  expect_close(testing::to_float(d_dlogits.download()), dlogits, tolerance, "dlogits");
}

template <class Element>
void check_all_slices(testing::Tolerance tolerance) {
  // A vocabulary of 250 padded to 3 slices of 100: [0, 100) real, [100, 200) real, [200, 250) real
  // then padding; and a slice past the vocabulary (padding only).
  check_slice<Element>(0, 100, 100, tolerance);
  check_slice<Element>(100, 100, 100, tolerance);
  check_slice<Element>(200, 50, 100, tolerance);
  check_slice<Element>(300, 0, 100, tolerance);
}

TEST(CudaVocabSliceCrossEntropy, MatchesTheCpuF32) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_all_slices<float>(testing::kFloat32);
}

TEST(CudaVocabSliceCrossEntropy, MatchesTheCpuBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_all_slices<__nv_bfloat16>(testing::kBfloat16);
}

}  // namespace
}  // namespace meridian::ops::cuda

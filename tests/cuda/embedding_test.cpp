// ops/cuda/embedding.h against ops/cpu/embedding.h: more rows than one id tile (1024), channels not
// a multiple of a block, a small vocabulary so ids repeat, outputs poisoned. Forward is a copy and
// backward adds each table element's rows in the CPU's order, so both must match bit for bit.
#include "ops/cuda/embedding.h"

#include <gtest/gtest.h>

#include "cuda_test_support.h"
#include "ops/cpu/embedding.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::kExact;
using testing::random_floats;
using testing::random_ids;

constexpr int64_t kRows = 1031;
constexpr int64_t kChannels = 771;
constexpr int32_t kVocabulary = 97;  // more table rows than the kernel's 64 buckets, and repeats
constexpr auto kOutputs = static_cast<size_t>(kRows * kChannels);
constexpr auto kTableSize = static_cast<size_t>(kVocabulary * kChannels);

TEST(CudaEmbedding, ForwardCopiesRows) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(12);
  const std::vector<int32_t> ids = random_ids(static_cast<size_t>(kRows), kVocabulary, rng);
  const std::vector<float> table = random_floats(kTableSize, rng);
  std::vector<float> out(kOutputs);
  cpu::embedding_forward(out.data(), ids.data(), table.data(), kRows, kChannels);
  DeviceBuffer<int32_t> d_ids(ids);
  DeviceBuffer<float> d_table(table), d_out(kOutputs);
  d_out.poison();
  embedding_forward(d_out.get(), d_ids.get(), d_table.get(), kRows, kChannels, compute_stream());
  expect_close(d_out.download(), out, kExact, "embedding_forward");

  // bf16: the same copy of bf16 values.
  const std::vector<float> rounded = testing::rounded_to<__nv_bfloat16>(table);
  cpu::embedding_forward(out.data(), ids.data(), rounded.data(), kRows, kChannels);
  DeviceBuffer<__nv_bfloat16> d_bf16_table(testing::to_bf16(rounded)), d_bf16_out(kOutputs);
  d_bf16_out.poison();
  embedding_forward(d_bf16_out.get(), d_ids.get(), d_bf16_table.get(), kRows, kChannels, compute_stream());
  expect_close(testing::from_bf16(d_bf16_out.download()), out, kExact, "bf16 embedding_forward");
}

TEST(CudaEmbedding, BackwardSumsRepeatedIdsLikeCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(13);
  const std::vector<int32_t> ids = random_ids(static_cast<size_t>(kRows), kVocabulary, rng);
  const std::vector<float> dout = random_floats(kOutputs, rng);
  std::vector<float> dtable = random_floats(kTableSize, rng);  // backward accumulates
  DeviceBuffer<float> d_dtable(dtable), d_dout(dout);
  DeviceBuffer<int32_t> d_ids(ids);
  cpu::embedding_backward(dtable.data(), dout.data(), ids.data(), kRows, kChannels);
  embedding_backward(d_dtable.get(), d_dout.get(), d_ids.get(), kRows, kChannels, compute_stream());
  expect_close(d_dtable.download(), dtable, kExact, "embedding_backward");
}

TEST(CudaEmbedding, SliceForwardAndBackwardMatchCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(14);
  // Rows [30, 30 + 41) of the vocabulary: most ids fall outside the slice.
  constexpr int64_t kFirstRow = 30;
  constexpr int64_t kSliceRows = 41;
  const auto slice_size = static_cast<size_t>(kSliceRows * kChannels);
  const std::vector<int32_t> ids = random_ids(static_cast<size_t>(kRows), kVocabulary, rng);
  const std::vector<float> table = random_floats(slice_size, rng);
  std::vector<float> out(kOutputs);
  cpu::embedding_slice_forward(out.data(), ids.data(), table.data(), kFirstRow, kSliceRows, kRows, kChannels);
  DeviceBuffer<int32_t> d_ids(ids);
  DeviceBuffer<float> d_table(table), d_out(kOutputs);
  d_out.poison();
  embedding_slice_forward(d_out.get(), d_ids.get(), d_table.get(), kFirstRow, kSliceRows, kRows, kChannels,
                          compute_stream());
  expect_close(d_out.download(), out, kExact, "embedding_slice_forward");

  const std::vector<float> dout = random_floats(kOutputs, rng);
  std::vector<float> dtable = random_floats(slice_size, rng);
  DeviceBuffer<float> d_dtable(dtable), d_dout(dout);
  cpu::embedding_slice_backward(dtable.data(), dout.data(), ids.data(), kFirstRow, kSliceRows, kRows, kChannels);
  embedding_slice_backward(d_dtable.get(), d_dout.get(), d_ids.get(), kFirstRow, kSliceRows, kRows, kChannels,
                           compute_stream());
  expect_close(d_dtable.download(), dtable, kExact, "embedding_slice_backward");
}

}  // namespace
}  // namespace meridian::ops::cuda

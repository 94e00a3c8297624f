// Tensor-core flash attention (ops/cuda/flash_attention.h, bf16) against the CPU twin
// (ops/cpu/attention.h). Sequence lengths are not multiples of the 64-row tile (and one is a
// single token); out and lse are poisoned first, dqkv starts from random values (backward
// accumulates), and every head size class the kernels instantiate is met at least once, the
// query-major kernels' two row groups per warp (32 rows) included.
//
// Tolerance: bf16's (1e-2 abs + rel). Beyond one rounding per output, P and dS are rounded to bf16
// before their second products (2⁻⁹ relative each, summed over at most T = 200 keys of mixed
// signs). lse is fp32 from fp32 scores: held to 1e-3 · (1 + |lse|), the scores' only error being
// the order of the bf16 products' fp32 sums.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "cuda_test_support.h"
#include "ops/cpu/attention.h"
#include "ops/cuda/flash_attention.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::kBfloat16;
using testing::rounded_to;
using testing::TestStream;
using testing::to_element;
using bf16 = __nv_bfloat16;

struct Shape4 {
  int64_t B, T, C, NH;
};

// With overwrite (as training runs it, into a fresh gradient buffer), dqkv starts poisoned and must
// be fully written; otherwise it starts from random values that backward adds to.
void check(const Shape4& s, bool overwrite = false) {
  SCOPED_TRACE("B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
               " NH=" + std::to_string(s.NH) + " overwrite=" + std::to_string(overwrite));
  std::mt19937 rng(static_cast<unsigned>(s.T * 31 + s.C));
  const size_t qkv_size = static_cast<size_t>(s.B * s.T * 3 * s.C), out_size = static_cast<size_t>(s.B * s.T * s.C);
  const size_t lse_size = static_cast<size_t>(s.B * s.NH * s.T);
  // Spread scores (values up to ±2) so the softmax is far from uniform and the online maxima move.
  const std::vector<float> qkv = rounded_to<bf16>(testing::random_floats(qkv_size, rng, -2.0f, 2.0f));
  const std::vector<float> dout = rounded_to<bf16>(testing::random_floats(out_size, rng));
  const std::vector<float> dqkv_start = rounded_to<bf16>(testing::random_floats(qkv_size, rng));

  std::vector<float> out_expected(out_size), lse_expected(lse_size);
  cpu::attention_forward(out_expected.data(), lse_expected.data(), qkv.data(), s.B, s.T, s.C, s.NH);
  std::vector<float> dqkv_expected = overwrite ? std::vector<float>(qkv_size, 0.0f) : dqkv_start;
  cpu::attention_backward(dqkv_expected.data(), dout.data(), qkv.data(), out_expected.data(), lse_expected.data(),
                          s.B, s.T, s.C, s.NH);

  TestStream stream;
  DeviceBuffer<bf16> qkv_device(to_element<bf16>(qkv));
  DeviceBuffer<bf16> out(out_size);
  DeviceBuffer<float> lse(lse_size);
  out.poison();
  lse.poison();
  flash_attention_forward(out.get(), lse.get(), qkv_device.get(), s.B, s.T, s.C, s.NH, stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  const std::vector<float> out_actual = testing::to_float(out.download());
  expect_close(out_actual, out_expected, kBfloat16, "out");
  expect_close(lse.download(), lse_expected, testing::Tolerance{1e-3, 1e-3}, "lse");

  // Backward from the GPU's own out and lse, as in training.
  DeviceBuffer<bf16> dout_device(to_element<bf16>(dout));
  DeviceBuffer<bf16> dqkv(to_element<bf16>(dqkv_start));
  if (overwrite) dqkv.poison();
  DeviceBuffer<char> scratch(flash_attention_backward_scratch_bytes(s.B, s.T, s.NH));
  flash_attention_backward(dqkv.get(), dout_device.get(), qkv_device.get(), out.get(), lse.get(), scratch.get(), s.B,
                           s.T, s.C, s.NH, stream.get(), overwrite);
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  expect_close(testing::to_float(dqkv.download()), dqkv_expected, kBfloat16, "dqkv");
}

TEST(CudaFlashAttention, ForwardBackwardBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  // Every instantiated head size, 16 to 128 (64 is GPT-2's), and tile edges: T = 1, 63, 64, 65, 130, 200.
  const Shape4 shapes[] = {{3, 37, 48, 3},   {2, 130, 128, 2}, {1, 200, 192, 3}, {2, 1, 64, 1},
                           {1, 63, 96, 1},   {1, 64, 128, 1},  {2, 65, 256, 2},  {1, 100, 64, 2},
                           {1, 70, 144, 3},  {1, 129, 80, 1},  {1, 97, 224, 2}};
  for (const Shape4& s : shapes) check(s);
}

TEST(CudaFlashAttention, LongSequenceMovesTheRunningMaximaAcrossManyTiles) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  // GPT-2's head size over 11 key tiles (the last partial): the online softmax rescales O and the
  // running sums at every tile, and backward's key-major kernel walks 11 query tiles.
  check({1, 700, 64, 1});
}

// set_flash_query_rows_per_warp for a scope of a test: restored to the default even when the test fails.
class QueryRowsPerWarp {
 public:
  explicit QueryRowsPerWarp(int rows) { set_flash_query_rows_per_warp(rows); }
  ~QueryRowsPerWarp() { set_flash_query_rows_per_warp(16); }
  QueryRowsPerWarp(const QueryRowsPerWarp&) = delete;
  QueryRowsPerWarp& operator=(const QueryRowsPerWarp&) = delete;
};

TEST(CudaFlashAttention, QueryMajorKernelsWith32RowsPerWarp) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  const QueryRowsPerWarp rows(32);
  // The forward and dQ kernels with two row groups per warp, 128 queries per block, up to hs = 64;
  // above, the 16-row kernels run.
  ASSERT_EQ(flash_query_rows_per_warp(64), 32);
  ASSERT_EQ(flash_query_rows_per_warp(16), 32);
  ASSERT_EQ(flash_query_rows_per_warp(80), 16);
  // Around the 128-query tile: the second group wholly past T (T = 1, 40, 64), partly (65, 100, 127),
  // exactly full (128), a second query tile with one row (129); 11 key tiles at GPT-2's head size
  // (700); every head size the two-group kernels take (16, 32, 48, 64); one head size above (112).
  const Shape4 shapes[] = {{2, 1, 64, 1},  {2, 40, 64, 1},    {1, 64, 32, 1},  {1, 65, 64, 1},
                           {1, 100, 48, 1}, {3, 127, 144, 3}, {1, 128, 64, 1}, {1, 129, 16, 1},
                           {2, 200, 128, 2}, {1, 700, 64, 1},  {1, 97, 224, 2}};
  for (const Shape4& s : shapes) check(s);
  check({2, 150, 128, 2}, /*overwrite=*/true);
}

TEST(CudaFlashAttention, BackwardOverwritesAFreshGradient) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check({1, 97, 224, 2}, true);
  check({2, 130, 128, 2}, true);
}

TEST(CudaFlashAttention, BackwardIsDeterministic) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  const int64_t B = 2, T = 150, C = 128, NH = 2;
  std::mt19937 rng(7);
  const size_t qkv_size = static_cast<size_t>(B * T * 3 * C), out_size = static_cast<size_t>(B * T * C);
  TestStream stream;
  DeviceBuffer<bf16> qkv(to_element<bf16>(testing::random_floats(qkv_size, rng)));
  DeviceBuffer<bf16> dout(to_element<bf16>(testing::random_floats(out_size, rng)));
  DeviceBuffer<bf16> out(out_size);
  DeviceBuffer<float> lse(static_cast<size_t>(B * NH * T));
  DeviceBuffer<char> scratch(flash_attention_backward_scratch_bytes(B, T, NH));
  flash_attention_forward(out.get(), lse.get(), qkv.get(), B, T, C, NH, stream.get());
  std::vector<std::vector<bf16>> results;
  for (int run = 0; run < 2; ++run) {
    DeviceBuffer<bf16> dqkv(std::vector<bf16>(qkv_size, __float2bfloat16(0.0f)));
    flash_attention_backward(dqkv.get(), dout.get(), qkv.get(), out.get(), lse.get(), scratch.get(), B, T, C, NH,
                             stream.get());
    MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
    results.push_back(dqkv.download());
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t i = 0; i < results[0].size(); ++i) {
    ASSERT_EQ(__bfloat162float(results[0][i]), __bfloat162float(results[1][i])) << "element " << i;
  }
}

TEST(CudaFlashAttention, RejectsUnsupportedShapesAndMisalignedPointers) {
  // Argument checks run before any device work, so this needs no GPU.
  EXPECT_TRUE(flash_attention_supports(64));
  EXPECT_FALSE(flash_attention_supports(40));
  EXPECT_FALSE(flash_attention_supports(144));
  EXPECT_THROW(set_flash_query_rows_per_warp(24), std::invalid_argument);
  EXPECT_EQ(flash_query_rows_per_warp(64), 16);  // the default, and unchanged by the refused value
  EXPECT_THROW(flash_attention_forward(nullptr, nullptr, nullptr, 1, 4, 120, 3, nullptr), std::invalid_argument);
  EXPECT_THROW(flash_attention_forward(nullptr, nullptr, nullptr, 1, 4, 288, 2, nullptr), std::invalid_argument);
  auto* misaligned = reinterpret_cast<bf16*>(uintptr_t{2});
  EXPECT_THROW(flash_attention_forward(misaligned, nullptr, misaligned, 1, 4, 64, 1, nullptr), std::invalid_argument);
  // Backward reads out too (16 bytes at a time): a misaligned out alone is refused.
  auto* aligned = reinterpret_cast<bf16*>(uintptr_t{16});
  EXPECT_THROW(flash_attention_backward(aligned, aligned, aligned, misaligned, nullptr, nullptr, 1, 4, 64, 1, nullptr),
               std::invalid_argument);
}

}  // namespace
}  // namespace meridian::ops::cuda

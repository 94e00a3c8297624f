// Flash-style causal attention against the CPU twin (ops/cpu/attention.h), fp32 and bf16 storage.
// Shapes are not multiples of the kernels' 16-row blocks or 32-key tiles, and the head sizes cover
// 32, an odd 75, and the 128 maximum (whose backward kernels need more than 48 KiB of shared memory).
#include <gtest/gtest.h>

#include <stdexcept>

#include "cuda_test_support.h"
#include "ops/cpu/attention.h"
#include "ops/cuda/attention.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::kFloat32;
using testing::rounded_to;
using testing::TestStream;
using testing::to_element;
using testing::tolerance_for;

struct AttentionShape {
  int64_t B, T, C, NH;
};

std::string describe(const AttentionShape& s) {
  return "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
         " NH=" + std::to_string(s.NH);
}

template <class Element>
void check_attention(const AttentionShape& s) {
  SCOPED_TRACE(describe(s));
  std::mt19937 rng(static_cast<unsigned>(s.T * 131 + s.C));
  const size_t qkv_size = static_cast<size_t>(s.B * s.T * 3 * s.C);
  const size_t out_size = static_cast<size_t>(s.B * s.T * s.C);
  const size_t lse_size = static_cast<size_t>(s.B * s.NH * s.T);
  const std::vector<float> qkv = rounded_to<Element>(testing::random_floats(qkv_size, rng));
  const std::vector<float> dout = rounded_to<Element>(testing::random_floats(out_size, rng));
  const std::vector<float> dqkv_start = rounded_to<Element>(testing::random_floats(qkv_size, rng));

  std::vector<float> out_expected(out_size);
  std::vector<float> lse_expected(lse_size);
  cpu::attention_forward(out_expected.data(), lse_expected.data(), qkv.data(), s.B, s.T, s.C, s.NH);

  TestStream stream;
  DeviceBuffer<Element> qkv_device(to_element<Element>(qkv));
  DeviceBuffer<Element> out(out_size);
  DeviceBuffer<float> lse(lse_size);
  out.poison();
  lse.poison();
  attention_forward<Element>(out.get(), lse.get(), qkv_device.get(), s.B, s.T, s.C, s.NH, stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  expect_close(testing::to_float(out.download()), out_expected, tolerance_for<Element>(), "out");
  // lse is fp32 computed in fp32 from the same (rounded) inputs whatever the storage type.
  expect_close(lse.download(), lse_expected, kFloat32, "lse");

  // Backward from the reference's out (stored as Element) and lse, so only the backward kernels
  // are measured. dqkv starts from random values: an element left unwritten keeps a wrong value.
  const std::vector<float> out_stored = rounded_to<Element>(out_expected);
  std::vector<float> dqkv_expected = dqkv_start;
  cpu::attention_backward(dqkv_expected.data(), dout.data(), qkv.data(), out_stored.data(), lse_expected.data(), s.B,
                          s.T, s.C, s.NH);
  DeviceBuffer<Element> dout_device(to_element<Element>(dout));
  DeviceBuffer<Element> out_device(to_element<Element>(out_stored));
  DeviceBuffer<float> lse_device(lse_expected);
  DeviceBuffer<Element> dqkv(to_element<Element>(dqkv_start));
  attention_backward<Element>(dqkv.get(), dout_device.get(), qkv_device.get(), out_device.get(), lse_device.get(), s.B,
                              s.T, s.C, s.NH, stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  expect_close(testing::to_float(dqkv.download()), dqkv_expected, tolerance_for<Element>(), "dqkv");
}

const AttentionShape kShapes[] = {
    {3, 37, 96, 3},   // head size 32; 3 query blocks, 2 key tiles
    {2, 100, 150, 2},  // head size 75: channels past 64 in the lane's third slot, masked past 75
    {1, 67, 256, 2},   // head size 128, the maximum
    {2, 1, 64, 1},     // a single token
};

TEST(CudaAttention, ForwardBackwardFp32) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const AttentionShape& s : kShapes) check_attention<float>(s);
}

TEST(CudaAttention, ForwardBackwardBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const AttentionShape& s : kShapes) check_attention<__nv_bfloat16>(s);
}

TEST(CudaAttention, RejectsHeadSizeAbove128) {
  // Argument checks run before any device work, so this needs no GPU.
  EXPECT_THROW(attention_forward<float>(nullptr, nullptr, nullptr, 1, 4, 258, 2, nullptr), std::invalid_argument);
  EXPECT_THROW(attention_forward<float>(nullptr, nullptr, nullptr, 1, 4, 96, 5, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace meridian::ops::cuda

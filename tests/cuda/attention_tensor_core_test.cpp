// Tensor-core causal attention (ops/cuda/attention_tensor_core.h, bf16) against the CPU twin
// (ops/cpu/attention.h). Shapes are not multiples of any tile; outputs and the saved probabilities
// are poisoned first, dqkv starts from random values (backward accumulates).
//
// Tolerance: bf16's (1e-2 abs + rel). Beyond the one rounding per output of the other bf16
// kernels, this path rounds the probabilities P and the score gradients dS to bf16 before the
// second products; each such rounding is 2⁻⁹ relative and the products sum at most T = 100 terms of
// mixed signs, which stays inside the bound for values of order one.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "cuda_test_support.h"
#include "ops/cpu/attention.h"
#include "ops/cuda/attention_tensor_core.h"

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

void check(const Shape4& s) {
  SCOPED_TRACE("B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
               " NH=" + std::to_string(s.NH));
  std::mt19937 rng(static_cast<unsigned>(s.T * 17 + s.C));
  const size_t qkv_size = static_cast<size_t>(s.B * s.T * 3 * s.C), out_size = static_cast<size_t>(s.B * s.T * s.C);
  const size_t p_size = static_cast<size_t>(s.B * s.NH * s.T * s.T);
  const std::vector<float> qkv = rounded_to<bf16>(testing::random_floats(qkv_size, rng));
  const std::vector<float> dout = rounded_to<bf16>(testing::random_floats(out_size, rng));
  const std::vector<float> dqkv_start = rounded_to<bf16>(testing::random_floats(qkv_size, rng));

  std::vector<float> out_expected(out_size), lse(static_cast<size_t>(s.B * s.NH * s.T));
  cpu::attention_forward(out_expected.data(), lse.data(), qkv.data(), s.B, s.T, s.C, s.NH);
  std::vector<float> dqkv_expected = dqkv_start;
  cpu::attention_backward(dqkv_expected.data(), dout.data(), qkv.data(), out_expected.data(), lse.data(), s.B, s.T,
                          s.C, s.NH);

  TestStream stream;
  DeviceBuffer<bf16> qkv_device(to_element<bf16>(qkv));
  DeviceBuffer<bf16> out(out_size), probabilities(p_size);
  out.poison();
  probabilities.poison();
  DeviceBuffer<char> forward_scratch(attention_tc_forward_scratch_bytes(s.B, s.T, s.C, s.NH));
  attention_tc_forward(out.get(), probabilities.get(), qkv_device.get(), forward_scratch.get(), s.B, s.T, s.C, s.NH,
                       stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  expect_close(testing::to_float(out.download()), out_expected, kBfloat16, "out");

  // Every row of P sums to 1 over the keys it sees and is exactly 0 above the diagonal.
  const std::vector<float> p = testing::to_float(probabilities.download());
  for (int64_t row = 0; row < s.B * s.NH * s.T; ++row) {
    const int64_t t = row % s.T;
    double sum = 0.0;
    for (int64_t j = 0; j < s.T; ++j) {
      const float value = p[static_cast<size_t>(row * s.T + j)];
      if (j > t) {
        ASSERT_EQ(value, 0.0f) << "row " << row << " key " << j;
      }
      sum += value;
    }
    ASSERT_NEAR(sum, 1.0, 1e-2) << "row " << row;
  }

  DeviceBuffer<bf16> dout_device(to_element<bf16>(dout));
  DeviceBuffer<bf16> dqkv(to_element<bf16>(dqkv_start));
  DeviceBuffer<char> backward_scratch(attention_tc_backward_scratch_bytes(s.B, s.T, s.C, s.NH));
  attention_tc_backward(dqkv.get(), dout_device.get(), qkv_device.get(), probabilities.get(), backward_scratch.get(),
                        s.B, s.T, s.C, s.NH, stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  expect_close(testing::to_float(dqkv.download()), dqkv_expected, kBfloat16, "dqkv");
}

TEST(CudaTensorCoreAttention, ForwardBackwardBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  const Shape4 shapes[] = {{3, 37, 96, 3}, {2, 100, 150, 2}, {1, 67, 256, 2}, {2, 1, 64, 1}};
  for (const Shape4& s : shapes) check(s);
}

TEST(CudaTensorCoreAttention, RejectsHeadsThatDoNotDivideChannels) {
  // Argument checks run before any device work, so this needs no GPU.
  EXPECT_THROW(attention_tc_forward(nullptr, nullptr, nullptr, nullptr, 1, 4, 96, 5, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace meridian::ops::cuda

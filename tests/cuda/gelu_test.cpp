// ops/cuda/gelu.h against ops/cpu/gelu.h: n not a multiple of the block size, outputs poisoned, inputs
// over the range where GELU bends (and its tails).
#include "ops/cuda/gelu.h"

#include <gtest/gtest.h>

#include "cuda_test_support.h"
#include "ops/cpu/gelu.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::from_offset;
using testing::kBfloat16;
using testing::kFloat32;
using testing::random_floats;

constexpr size_t kN = 100003;

TEST(CudaGelu, ForwardMatchesCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(5);
  const std::vector<float> inp = random_floats(kN, rng, -8.0f, 8.0f);
  std::vector<float> out(kN);
  cpu::gelu_forward(out.data(), inp.data(), static_cast<int64_t>(kN));
  DeviceBuffer<float> d_inp(inp), d_out(kN);
  d_out.poison();
  gelu_forward(d_out.get(), d_inp.get(), static_cast<int64_t>(kN), compute_stream());
  expect_close(d_out.download(), out, kFloat32, "gelu_forward");
}

TEST(CudaGelu, BackwardAccumulatesLikeCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(6);
  const std::vector<float> inp = random_floats(kN, rng, -8.0f, 8.0f);
  const std::vector<float> dout = random_floats(kN, rng);
  std::vector<float> dinp = random_floats(kN, rng);
  DeviceBuffer<float> d_dinp(dinp), d_inp(inp), d_dout(dout);
  cpu::gelu_backward(dinp.data(), inp.data(), dout.data(), static_cast<int64_t>(kN));
  gelu_backward(d_dinp.get(), d_inp.get(), d_dout.get(), static_cast<int64_t>(kN), compute_stream());
  expect_close(d_dinp.download(), dinp, kFloat32, "gelu_backward");
}

TEST(CudaGelu, Bfloat16MatchesCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(7);
  const std::vector<float> inp = testing::rounded_to<__nv_bfloat16>(random_floats(kN, rng, -8.0f, 8.0f));
  const std::vector<float> dout = testing::rounded_to<__nv_bfloat16>(random_floats(kN, rng));
  std::vector<float> dinp = testing::rounded_to<__nv_bfloat16>(random_floats(kN, rng));
  std::vector<float> out(kN);
  DeviceBuffer<__nv_bfloat16> d_inp(testing::to_bf16(inp)), d_dout(testing::to_bf16(dout)),
      d_dinp(testing::to_bf16(dinp)), d_out(kN);
  cpu::gelu_forward(out.data(), inp.data(), static_cast<int64_t>(kN));
  cpu::gelu_backward(dinp.data(), inp.data(), dout.data(), static_cast<int64_t>(kN));

  d_out.poison();
  gelu_forward(d_out.get(), d_inp.get(), static_cast<int64_t>(kN), compute_stream());
  gelu_backward(d_dinp.get(), d_inp.get(), d_dout.get(), static_cast<int64_t>(kN), compute_stream());
  expect_close(testing::from_bf16(d_out.download()), out, kBfloat16, "bf16 gelu_forward");
  expect_close(testing::from_bf16(d_dinp.download()), dinp, kBfloat16, "bf16 gelu_backward");
}

// The kernels move 16-byte vectors when every pointer allows it and single elements otherwise: views
// at an element offset of 1 (2 bytes: one by one), 8 (16 bytes: vectors again) and 3, each with a
// length that leaves a tail, in place and not, overwriting and accumulating.
TEST(CudaGelu, ViewsAtAnyOffsetMatchCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(17);
  constexpr int64_t kViewLength = 1003;
  for (const int64_t offset : testing::kViewOffsets) {
    SCOPED_TRACE("offset " + std::to_string(offset));
    const size_t total = static_cast<size_t>(kViewLength + offset);
    const std::vector<float> inp = testing::rounded_to<__nv_bfloat16>(random_floats(total, rng, -8.0f, 8.0f));
    const std::vector<float> dout = testing::rounded_to<__nv_bfloat16>(random_floats(total, rng));
    const std::vector<float> dinp_start = testing::rounded_to<__nv_bfloat16>(random_floats(total, rng));
    std::vector<float> out(static_cast<size_t>(kViewLength)), dinp = from_offset(offset, dinp_start);
    cpu::gelu_forward(out.data(), from_offset(offset, inp).data(), kViewLength);
    cpu::gelu_backward(dinp.data(), from_offset(offset, inp).data(), from_offset(offset, dout).data(), kViewLength);

    DeviceBuffer<__nv_bfloat16> d_inp(testing::to_bf16(inp)), d_dout(testing::to_bf16(dout)),
        d_dinp(testing::to_bf16(dinp_start)), d_out(total);
    d_out.poison();
    gelu_forward(d_out.get() + offset, d_inp.get() + offset, kViewLength, compute_stream());
    gelu_backward(d_dinp.get() + offset, d_inp.get() + offset, d_dout.get() + offset, kViewLength, compute_stream());
    expect_close(from_offset(offset, testing::from_bf16(d_out.download())), out, kBfloat16, "gelu_forward view");
    expect_close(from_offset(offset, testing::from_bf16(d_dinp.download())), dinp, kBfloat16, "gelu_backward view");
    // In place (the activation overwriting its input), then a gradient written without being read.
    gelu_forward(d_inp.get() + offset, d_inp.get() + offset, kViewLength, compute_stream());
    expect_close(from_offset(offset, testing::from_bf16(d_inp.download())), out, kBfloat16, "gelu_forward in place");
    d_dinp.poison();
    std::vector<float> fresh(static_cast<size_t>(kViewLength), 0.0f);
    cpu::gelu_backward(fresh.data(), from_offset(offset, inp).data(), from_offset(offset, dout).data(), kViewLength);
    DeviceBuffer<__nv_bfloat16> d_inp_again(testing::to_bf16(inp));
    gelu_backward(d_dinp.get() + offset, d_inp_again.get() + offset, d_dout.get() + offset, kViewLength,
                  compute_stream(), /*overwrite=*/true);
    expect_close(from_offset(offset, testing::from_bf16(d_dinp.download())), fresh, kBfloat16,
                 "gelu_backward overwrite");
  }
}

}  // namespace
}  // namespace meridian::ops::cuda

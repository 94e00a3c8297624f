// ops/cuda/elementwise.h against ops/cpu/elementwise.h: n not a multiple of the block size, outputs
// poisoned, in-place forms included.
#include "ops/cuda/elementwise.h"

#include <gtest/gtest.h>

#include "cuda_test_support.h"
#include "ops/cpu/elementwise.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::kBfloat16;
using testing::kExact;
using testing::kFloat32;
using testing::random_floats;

constexpr size_t kN = 100003;
constexpr auto kLength = static_cast<int64_t>(kN);

TEST(CudaElementwise, AddForwardMatchesCpuIncludingInPlace) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(8);
  const std::vector<float> a = random_floats(kN, rng), b = random_floats(kN, rng);
  std::vector<float> out(kN);
  cpu::add_forward(out.data(), a.data(), b.data(), kLength);
  DeviceBuffer<float> d_a(a), d_b(b), d_out(kN);
  d_out.poison();
  add_forward(d_out.get(), d_a.get(), d_b.get(), kLength, compute_stream());
  expect_close(d_out.download(), out, kExact, "add_forward");               // one IEEE add: the same bits
  add_forward(d_a.get(), d_a.get(), d_b.get(), kLength, compute_stream());  // the residual, in place
  expect_close(d_a.download(), out, kExact, "add_forward in place");
}

TEST(CudaElementwise, AddBackwardAccumulatesIntoEitherInput) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(9);
  const std::vector<float> dout = random_floats(kN, rng);
  std::vector<float> da = random_floats(kN, rng), db = random_floats(kN, rng);
  DeviceBuffer<float> d_dout(dout), d_da(da), d_db(db);
  cpu::add_backward(da.data(), db.data(), dout.data(), kLength);
  add_backward(d_da.get(), d_db.get(), d_dout.get(), kLength, compute_stream());
  expect_close(d_da.download(), da, kFloat32, "add_backward da");
  expect_close(d_db.download(), db, kFloat32, "add_backward db");
  cpu::add_backward(nullptr, db.data(), dout.data(), kLength);
  add_backward(nullptr, d_db.get(), d_dout.get(), kLength, compute_stream());
  expect_close(d_db.download(), db, kFloat32, "add_backward db alone");
}

TEST(CudaElementwise, AxpyScaleScaledCopyFillMatchCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(10);
  const std::vector<float> src = random_floats(kN, rng);
  std::vector<float> dst = random_floats(kN, rng);
  DeviceBuffer<float> d_src(src), d_dst(dst);
  cpu::axpy(dst.data(), src.data(), -0.37f, kLength);
  axpy(d_dst.get(), d_src.get(), -0.37f, kLength, compute_stream());
  expect_close(d_dst.download(), dst, kFloat32, "axpy");

  cpu::scale(dst.data(), 1.7f, kLength);
  scale(d_dst.get(), 1.7f, kLength, compute_stream());
  expect_close(d_dst.download(), dst, kFloat32, "scale");

  std::vector<float> out(kN);
  cpu::scaled_copy(out.data(), src.data(), 0.25f, kLength);
  DeviceBuffer<float> d_out(kN);
  d_out.poison();
  scaled_copy(d_out.get(), d_src.get(), 0.25f, kLength, compute_stream());
  expect_close(d_out.download(), out, kFloat32, "scaled_copy");

  cpu::fill(out.data(), 3.5f, kLength);
  d_out.poison();
  fill(d_out.get(), 3.5f, kLength, compute_stream());
  expect_close(d_out.download(), out, kExact, "fill");
}

TEST(CudaElementwise, Bfloat16ResidualMatchesCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(11);
  const std::vector<float> a = testing::rounded_to<__nv_bfloat16>(random_floats(kN, rng));
  const std::vector<float> b = testing::rounded_to<__nv_bfloat16>(random_floats(kN, rng));
  std::vector<float> out(kN);
  cpu::add_forward(out.data(), a.data(), b.data(), kLength);
  DeviceBuffer<__nv_bfloat16> d_a(testing::to_bf16(a)), d_b(testing::to_bf16(b)), d_out(kN);
  d_out.poison();
  add_forward(d_out.get(), d_a.get(), d_b.get(), kLength, compute_stream());
  expect_close(testing::from_bf16(d_out.download()), out, kBfloat16, "bf16 add_forward");

  // Backward: da and db both start at b's values and gain a.
  std::vector<float> da = b, db = b;
  cpu::add_backward(da.data(), db.data(), a.data(), kLength);
  DeviceBuffer<__nv_bfloat16> d_da(testing::to_bf16(b)), d_db(testing::to_bf16(b));
  add_backward(d_da.get(), d_db.get(), d_a.get(), kLength, compute_stream());
  expect_close(testing::from_bf16(d_da.download()), da, kBfloat16, "bf16 add_backward da");
  expect_close(testing::from_bf16(d_db.download()), db, kBfloat16, "bf16 add_backward db");
}

TEST(CudaElementwise, EmptyInputsLaunchNothing) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  add_forward(static_cast<float*>(nullptr), nullptr, nullptr, 0, compute_stream());
  fill(nullptr, 1.0f, 0, compute_stream());
  synchronize(compute_stream());
}

}  // namespace
}  // namespace meridian::ops::cuda

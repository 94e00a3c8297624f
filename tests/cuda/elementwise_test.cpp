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
using testing::from_offset;
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

// 16-byte vectors where every pointer allows them, single elements otherwise: the residual add, the
// gradient axpy (fp32 += bf16, as mixed precision accumulates) and the conversion on views at element
// offsets 1, 3 (one by one) and 8 (vectors again), with a tail.
TEST(CudaElementwise, ViewsAtAnyOffsetMatchCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(21);
  constexpr int64_t kViewLength = 1003;
  for (const int64_t offset : testing::kViewOffsets) {
    SCOPED_TRACE("offset " + std::to_string(offset));
    const size_t total = static_cast<size_t>(kViewLength + offset);
    const std::vector<float> a = random_floats(total, rng), b = random_floats(total, rng);
    std::vector<float> sum(static_cast<size_t>(kViewLength));
    cpu::add_forward(sum.data(), from_offset(offset, a).data(), from_offset(offset, b).data(), kViewLength);
    DeviceBuffer<float> d_a(a), d_b(b), d_sum(total);
    d_sum.poison();
    add_forward(d_sum.get() + offset, d_a.get() + offset, d_b.get() + offset, kViewLength, compute_stream());
    expect_close(from_offset(offset, d_sum.download()), sum, kExact, "add_forward view");

    const std::vector<float> grad = testing::rounded_to<__nv_bfloat16>(random_floats(total, rng));
    std::vector<float> master = from_offset(offset, a);
    for (size_t i = 0; i < master.size(); ++i) master[i] += 0.5f * from_offset(offset, grad)[i];
    DeviceBuffer<__nv_bfloat16> d_grad(testing::to_bf16(grad));
    axpy(d_a.get() + offset, d_grad.get() + offset, 0.5f, kViewLength, compute_stream());
    expect_close(from_offset(offset, d_a.download()), master, kFloat32, "axpy fp32 += bf16 view");

    DeviceBuffer<__nv_bfloat16> d_rounded(total);
    d_rounded.poison();
    convert(d_rounded.get() + offset, d_b.get() + offset, kViewLength, compute_stream());
    expect_close(from_offset(offset, testing::from_bf16(d_rounded.download())),
                 testing::rounded_to<__nv_bfloat16>(from_offset(offset, b)), kExact, "convert view");
  }
}

}  // namespace
}  // namespace meridian::ops::cuda

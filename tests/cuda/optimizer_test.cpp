// ops/cuda/optimizer.h against ops/cpu/optimizer.h: AdamW over a flat buffer whose length is not a
// multiple of the block size, and the deterministic sum of squares behind the global gradient norm.
#include "ops/cuda/optimizer.h"

#include <gtest/gtest.h>

#include <cstring>

#include "cuda_test_support.h"
#include "ops/cpu/optimizer.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::kFloat32;
using testing::random_floats;

constexpr size_t kN = 100003;
constexpr auto kLength = static_cast<int64_t>(kN);

TEST(CudaAdamW, StepsMatchCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(15);
  std::vector<float> param = random_floats(kN, rng);
  std::vector<float> m = random_floats(kN, rng, -0.1f, 0.1f);
  std::vector<float> v = random_floats(kN, rng, 0.0f, 0.01f);
  DeviceBuffer<float> d_param(param), d_m(m), d_v(v);
  // Three steps with a new gradient each, weight decay, clipping's gradient scale, and bias correction
  // at steps 1, 2, 3.
  AdamWHyper hyper;
  hyper.lr = 1e-3f;
  hyper.weight_decay = 0.1f;
  hyper.grad_scale = 0.7f;
  for (int64_t step = 1; step <= 3; ++step) {
    hyper.step = step;
    const std::vector<float> grad = random_floats(kN, rng);
    DeviceBuffer<float> d_grad(grad);
    cpu::adamw_update(param.data(), grad.data(), m.data(), v.data(), kLength, hyper);
    adamw_update(d_param.get(), d_grad.get(), d_m.get(), d_v.get(), kLength, hyper, compute_stream());
    const std::string where = "step " + std::to_string(step);
    expect_close(d_param.download(), param, kFloat32, "param " + where);
    expect_close(d_m.download(), m, kFloat32, "m " + where);
    expect_close(d_v.download(), v, kFloat32, "v " + where);
  }
}

TEST(CudaSumOfSquares, MatchesCpuAndIsDeterministic) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(16);
  for (const size_t n : {size_t{0}, size_t{1}, size_t{1000003}}) {
    const std::vector<float> x = random_floats(n, rng);
    DeviceBuffer<float> d_x(x);
    const double expected = cpu::sum_of_squares(x.data(), static_cast<int64_t>(n));
    const double first = sum_of_squares(d_x.get(), static_cast<int64_t>(n), compute_stream());
    const double second = sum_of_squares(d_x.get(), static_cast<int64_t>(n), compute_stream());
    // Both sum in double, in different orders: agreement to ~1e-12 relative.
    EXPECT_NEAR(first, expected, 1e-12 * expected + 1e-30) << "n = " << n;
    EXPECT_EQ(std::memcmp(&first, &second, sizeof(double)), 0) << "n = " << n << ": not deterministic";
  }
}

TEST(CudaSumOfSquares, AccumulatesOverTensorsOnTheDevice) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(17);
  const std::vector<float> a = random_floats(771, rng), b = random_floats(100003, rng);
  DeviceBuffer<float> d_a(a), d_b(b);
  DeviceBuffer<double> d_result(1), d_partials(kSumOfSquaresPartials);
  d_result.poison();
  sum_of_squares(d_result.get(), d_partials.get(), d_a.get(), static_cast<int64_t>(a.size()), false, compute_stream());
  sum_of_squares(d_result.get(), d_partials.get(), d_b.get(), static_cast<int64_t>(b.size()), true, compute_stream());
  const double expected = cpu::sum_of_squares(a.data(), static_cast<int64_t>(a.size())) +
                          cpu::sum_of_squares(b.data(), static_cast<int64_t>(b.size()));
  EXPECT_NEAR(d_result.download()[0], expected, 1e-12 * expected);
}

}  // namespace
}  // namespace meridian::ops::cuda

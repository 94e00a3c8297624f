// ops/cuda/optimizer.h against ops/cpu/optimizer.h: AdamW over a flat buffer whose length is not a
// multiple of the block size, the multi-tensor AdamW over more tensors than one launch takes, and the
// deterministic sums of squares behind the global gradient norm.
#include "ops/cuda/optimizer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

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

// Sizes around the 16 Ki-element chunk, an empty tensor, and more tensors (61) than one launch takes
// (kMultiTensorBatch = 48), alternating weight decay.
std::vector<int64_t> awkward_sizes() {
  std::vector<int64_t> sizes = {0, 1, 16383, 16384, 16385, 100003, 7, 50000};
  for (int64_t i = 0; i < 53; ++i) sizes.push_back(1 + (i * 977) % 40000);
  return sizes;
}

TEST(CudaAdamW, ManyTensorsMatchTheCpuPerTensor) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(18);
  const std::vector<int64_t> sizes = awkward_sizes();
  ASSERT_GT(static_cast<int>(sizes.size()), kMultiTensorBatch);
  AdamWHyper plain;
  plain.lr = 1e-3f;
  plain.grad_scale = 0.7f;
  AdamWHyper decayed = plain;
  decayed.weight_decay = 0.1f;
  struct Host {
    std::vector<float> param, m, v;
  };
  std::vector<Host> host;
  std::vector<std::unique_ptr<DeviceBuffer<float>>> device;  // param, m, v per tensor
  for (const int64_t n : sizes) {
    const auto count = static_cast<size_t>(n);
    host.push_back({random_floats(count, rng), random_floats(count, rng, -0.1f, 0.1f),
                    random_floats(count, rng, 0.0f, 0.01f)});
    for (const std::vector<float>* values : {&host.back().param, &host.back().m, &host.back().v})
      device.push_back(std::make_unique<DeviceBuffer<float>>(*values));
  }
  for (int64_t step = 1; step <= 2; ++step) {
    plain.step = decayed.step = step;
    std::vector<std::unique_ptr<DeviceBuffer<float>>> grads;
    std::vector<AdamWTensor> tensors;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const std::vector<float> grad = random_floats(static_cast<size_t>(sizes[i]), rng);
      grads.push_back(std::make_unique<DeviceBuffer<float>>(grad));
      const bool decay = i % 2 == 0;
      cpu::adamw_update(host[i].param.data(), grad.data(), host[i].m.data(), host[i].v.data(), sizes[i],
                        decay ? decayed : plain);
      tensors.push_back({device[3 * i]->get(), grads.back()->get(), device[3 * i + 1]->get(), device[3 * i + 2]->get(),
                         sizes[i], decay});
    }
    adamw_update_many(tensors.data(), static_cast<int>(tensors.size()), decayed, plain, compute_stream());
    for (size_t i = 0; i < sizes.size(); ++i) {
      const std::string where = "tensor " + std::to_string(i) + " (n = " + std::to_string(sizes[i]) + "), step " +
                                std::to_string(step);
      expect_close(device[3 * i]->download(), host[i].param, kFloat32, "param " + where);
      expect_close(device[3 * i + 1]->download(), host[i].m, kFloat32, "m " + where);
      expect_close(device[3 * i + 2]->download(), host[i].v, kFloat32, "v " + where);
    }
  }
}

TEST(CudaSumOfSquares, ManyTensorsMatchTheCpuAndAreDeterministic) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(19);
  const std::vector<int64_t> sizes = awkward_sizes();
  std::vector<std::unique_ptr<DeviceBuffer<float>>> buffers;
  std::vector<const float*> pointers;
  double expected = 0.0;
  for (const int64_t n : sizes) {
    const std::vector<float> x = random_floats(static_cast<size_t>(n), rng);
    expected += cpu::sum_of_squares(x.data(), n);
    buffers.push_back(std::make_unique<DeviceBuffer<float>>(x));
    pointers.push_back(buffers.back()->get());
  }
  const int count = static_cast<int>(sizes.size());
  DeviceBuffer<double> result(1), partials(static_cast<size_t>(sum_of_squares_many_partials(sizes.data(), count)));
  double runs[2];
  for (double& run : runs) {
    result.poison();
    sum_of_squares_many(result.get(), partials.get(), pointers.data(), sizes.data(), count, compute_stream());
    run = result.download()[0];
  }
  EXPECT_NEAR(runs[0], expected, 1e-12 * expected);
  EXPECT_EQ(std::memcmp(&runs[0], &runs[1], sizeof(double)), 0) << "not deterministic";
}

}  // namespace
}  // namespace meridian::ops::cuda

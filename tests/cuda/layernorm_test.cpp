// ops/cuda/layernorm.h against ops/cpu/layernorm.h on random inputs of awkward sizes (neither rows
// nor channels multiples of a warp or a block), outputs poisoned first.
#include "ops/cuda/layernorm.h"

#include <gtest/gtest.h>

#include "cuda_test_support.h"
#include "ops/cpu/layernorm.h"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::kBfloat16;
using testing::kFloat32;
using testing::random_floats;

struct Shape {
  int64_t rows;
  int64_t channels;
};
// 37×771: the awkward case; 1×5: one short row; 300×33: more rows than a block's 32 row lanes; all
// three go element by element. 45×768 (GPT-2's width) and 3×8 go by 16-byte vectors.
const Shape kShapes[] = {{37, 771}, {1, 5}, {300, 33}, {45, 768}, {3, 8}};
constexpr float kEps = 1e-5f;

std::string name(const char* what, Shape shape) {
  return std::string(what) + " " + std::to_string(shape.rows) + "x" + std::to_string(shape.channels);
}

TEST(CudaLayerNorm, ForwardMatchesCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(1);
  for (const Shape shape : kShapes) {
    const auto n = static_cast<size_t>(shape.rows * shape.channels);
    const std::vector<float> inp = random_floats(n, rng, -2.0f, 3.0f);
    const std::vector<float> weight = random_floats(static_cast<size_t>(shape.channels), rng, 0.5f, 1.5f);
    const std::vector<float> bias = random_floats(static_cast<size_t>(shape.channels), rng);
    std::vector<float> out(n), mean(static_cast<size_t>(shape.rows)), rstd(mean.size());
    cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(), shape.rows,
                           shape.channels, kEps);

    DeviceBuffer<float> d_inp(inp), d_weight(weight), d_bias(bias);
    DeviceBuffer<float> d_out(n), d_mean(mean.size()), d_rstd(rstd.size());
    d_out.poison();
    d_mean.poison();
    d_rstd.poison();
    layernorm_forward(d_out.get(), d_mean.get(), d_rstd.get(), d_inp.get(), d_weight.get(), d_bias.get(), shape.rows,
                      shape.channels, kEps, compute_stream());
    expect_close(d_out.download(), out, kFloat32, name("out", shape));
    expect_close(d_mean.download(), mean, kFloat32, name("mean", shape));
    expect_close(d_rstd.download(), rstd, kFloat32, name("rstd", shape));
  }
}

TEST(CudaLayerNorm, Bfloat16ForwardMatchesCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(2);
  for (const Shape shape : kShapes) {
    const auto n = static_cast<size_t>(shape.rows * shape.channels);
    // The CPU reference runs on the bf16-rounded values the kernel reads.
    const std::vector<float> inp = testing::rounded_to<__nv_bfloat16>(random_floats(n, rng, -2.0f, 3.0f));
    const std::vector<float> weight =
        testing::rounded_to<__nv_bfloat16>(random_floats(static_cast<size_t>(shape.channels), rng, 0.5f, 1.5f));
    const std::vector<float> bias =
        testing::rounded_to<__nv_bfloat16>(random_floats(static_cast<size_t>(shape.channels), rng));
    std::vector<float> out(n), mean(static_cast<size_t>(shape.rows)), rstd(mean.size());
    cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(), shape.rows,
                           shape.channels, kEps);

    DeviceBuffer<__nv_bfloat16> d_inp(testing::to_bf16(inp)), d_weight(testing::to_bf16(weight)),
        d_bias(testing::to_bf16(bias)), d_out(n);
    DeviceBuffer<float> d_mean(mean.size()), d_rstd(rstd.size());
    d_out.poison();
    d_mean.poison();
    d_rstd.poison();
    layernorm_forward(d_out.get(), d_mean.get(), d_rstd.get(), d_inp.get(), d_weight.get(), d_bias.get(), shape.rows,
                      shape.channels, kEps, compute_stream());
    expect_close(testing::from_bf16(d_out.download()), out, kBfloat16, name("bf16 out", shape));
    // Statistics are fp32 sums of the same bf16 inputs.
    expect_close(d_mean.download(), mean, kFloat32, name("bf16 mean", shape));
    expect_close(d_rstd.download(), rstd, kFloat32, name("bf16 rstd", shape));
  }
}

// Random f32 inputs of a backward test and the forward's statistics, from the cpu kernel. With
// `bf16_values` the inputs are rounded to bf16 first: the values a bf16 kernel reads, so the CPU
// reference runs on them with the same fp32 statistics.
struct BackwardCase {
  std::vector<float> inp, weight, bias, dout, mean, rstd;
};

BackwardCase backward_case(Shape shape, std::mt19937& rng, bool bf16_values = false) {
  const auto n = static_cast<size_t>(shape.rows * shape.channels);
  const auto channels = static_cast<size_t>(shape.channels);
  const auto values = [bf16_values](std::vector<float> v) {
    return bf16_values ? testing::rounded_to<__nv_bfloat16>(v) : v;
  };
  BackwardCase c{values(random_floats(n, rng, -2.0f, 3.0f)), values(random_floats(channels, rng, 0.5f, 1.5f)),
                 values(random_floats(channels, rng)), values(random_floats(n, rng)),
                 std::vector<float>(static_cast<size_t>(shape.rows)), std::vector<float>(static_cast<size_t>(shape.rows))};
  std::vector<float> out(n);
  cpu::layernorm_forward(out.data(), c.mean.data(), c.rstd.data(), c.inp.data(), c.weight.data(), c.bias.data(),
                         shape.rows, shape.channels, kEps);
  return c;
}

TEST(CudaLayerNorm, BackwardAccumulatesLikeCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(3);
  for (const Shape shape : kShapes) {
    const auto n = static_cast<size_t>(shape.rows * shape.channels);
    const auto channels = static_cast<size_t>(shape.channels);
    const BackwardCase c = backward_case(shape, rng);
    const std::vector<float>&inp = c.inp, &weight = c.weight, &dout = c.dout, &mean = c.mean, &rstd = c.rstd;
    // Backward accumulates: start from non-zero gradients.
    std::vector<float> dinp = random_floats(n, rng);
    std::vector<float> dweight = random_floats(channels, rng);
    std::vector<float> dbias = random_floats(channels, rng);
    DeviceBuffer<float> d_dinp(dinp), d_dweight(dweight), d_dbias(dbias);
    cpu::layernorm_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                            mean.data(), rstd.data(), shape.rows, shape.channels);

    DeviceBuffer<float> d_dout(dout), d_inp(inp), d_weight(weight), d_mean(mean), d_rstd(rstd);
    layernorm_backward(d_dinp.get(), d_dweight.get(), d_dbias.get(), d_dout.get(), d_inp.get(), d_weight.get(),
                       d_mean.get(), d_rstd.get(), shape.rows, shape.channels, compute_stream());
    expect_close(d_dinp.download(), dinp, kFloat32, name("dinp", shape));
    expect_close(d_dweight.download(), dweight, kFloat32, name("dweight", shape));
    expect_close(d_dbias.download(), dbias, kFloat32, name("dbias", shape));
  }
}

TEST(CudaLayerNorm, Bfloat16BackwardMatchesCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(5);
  const auto bf16 = [](const std::vector<float>& values) { return testing::rounded_to<__nv_bfloat16>(values); };
  for (const Shape shape : kShapes) {
    const auto n = static_cast<size_t>(shape.rows * shape.channels);
    const auto channels = static_cast<size_t>(shape.channels);
    const BackwardCase c = backward_case(shape, rng, /*bf16_values=*/true);
    const std::vector<float>&inp = c.inp, &weight = c.weight, &dout = c.dout, &mean = c.mean, &rstd = c.rstd;
    std::vector<float> dinp = bf16(random_floats(n, rng));
    std::vector<float> dweight = bf16(random_floats(channels, rng));
    std::vector<float> dbias = bf16(random_floats(channels, rng));
    DeviceBuffer<__nv_bfloat16> d_dinp(testing::to_bf16(dinp)), d_dweight(testing::to_bf16(dweight)),
        d_dbias(testing::to_bf16(dbias));
    cpu::layernorm_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                            mean.data(), rstd.data(), shape.rows, shape.channels);

    DeviceBuffer<__nv_bfloat16> d_dout(testing::to_bf16(dout)), d_inp(testing::to_bf16(inp)),
        d_weight(testing::to_bf16(weight));
    DeviceBuffer<float> d_mean(mean), d_rstd(rstd);
    layernorm_backward(d_dinp.get(), d_dweight.get(), d_dbias.get(), d_dout.get(), d_inp.get(), d_weight.get(),
                       d_mean.get(), d_rstd.get(), shape.rows, shape.channels, compute_stream());
    expect_close(testing::from_bf16(d_dinp.download()), dinp, kBfloat16, name("bf16 dinp", shape));
    expect_close(testing::from_bf16(d_dweight.download()), dweight, kBfloat16, name("bf16 dweight", shape));
    expect_close(testing::from_bf16(d_dbias.download()), dbias, kBfloat16, name("bf16 dbias", shape));
  }
}

// Mixed precision's form: bf16 activations with the fp32 gradients of fp32 master weights. The
// parameter gradients are fp32 sums added to fp32 starting values, so they meet the fp32 tolerance
// (a bf16 rounding of the sums, as the all-bf16 form makes, would not); both the single-block and the
// row-split (scratch) forms.
TEST(CudaLayerNorm, Bfloat16BackwardIntoFp32ParameterGradients) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(7);
  for (const Shape shape : {Shape{37, 771}, Shape{1300, 771}, Shape{45, 768}}) {
    for (const bool row_split : {false, true}) {
      const auto n = static_cast<size_t>(shape.rows * shape.channels);
      const auto channels = static_cast<size_t>(shape.channels);
      const BackwardCase c = backward_case(shape, rng, /*bf16_values=*/true);
      const std::vector<float>&inp = c.inp, &weight = c.weight, &dout = c.dout, &mean = c.mean, &rstd = c.rstd;
      std::vector<float> dinp(n, 0.0f);  // overwritten: the cpu's gradient added to zeros
      std::vector<float> dweight = random_floats(channels, rng);
      std::vector<float> dbias = random_floats(channels, rng);
      DeviceBuffer<__nv_bfloat16> d_dinp(n);
      DeviceBuffer<float> d_dweight(dweight), d_dbias(dbias);
      d_dinp.poison();
      cpu::layernorm_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                              mean.data(), rstd.data(), shape.rows, shape.channels);

      DeviceBuffer<__nv_bfloat16> d_dout(testing::to_bf16(dout)), d_inp(testing::to_bf16(inp)),
          d_weight(testing::to_bf16(weight));
      DeviceBuffer<float> d_mean(mean), d_rstd(rstd);
      DeviceBuffer<char> scratch(layernorm_backward_scratch_bytes(shape.rows, shape.channels));
      layernorm_backward(d_dinp.get(), d_dweight.get(), d_dbias.get(), d_dout.get(), d_inp.get(), d_weight.get(),
                         d_mean.get(), d_rstd.get(), shape.rows, shape.channels, compute_stream(),
                         /*overwrite_dinp=*/true, row_split ? scratch.get() : nullptr);
      const std::string form = row_split ? "row-split " : "";
      expect_close(testing::from_bf16(d_dinp.download()), dinp, kBfloat16, name("bf16 dinp", shape));
      expect_close(d_dweight.download(), dweight, kFloat32, name((form + "fp32 dweight").c_str(), shape));
      expect_close(d_dbias.download(), dbias, kFloat32, name((form + "fp32 dbias").c_str(), shape));
    }
  }
}

// The engine's form: the row-split parameter gradients (scratch given; N past several 512-row
// chunks, and fewer rows than one) and the overwritten input gradient (dinp poisoned first).
TEST(CudaLayerNorm, RowSplitParameterGradientsAndOverwrittenInputGradient) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(6);
  for (const Shape shape : {Shape{1300, 771}, Shape{37, 96}, Shape{1024, 768}}) {
    const auto n = static_cast<size_t>(shape.rows * shape.channels);
    const auto channels = static_cast<size_t>(shape.channels);
    const BackwardCase c = backward_case(shape, rng);
    const std::vector<float>&inp = c.inp, &weight = c.weight, &dout = c.dout, &mean = c.mean, &rstd = c.rstd;
    std::vector<float> dinp(n, 0.0f);  // overwritten: the cpu's gradient added to zeros
    std::vector<float> dweight = random_floats(channels, rng);
    std::vector<float> dbias = random_floats(channels, rng);
    DeviceBuffer<float> d_dinp(n), d_dweight(dweight), d_dbias(dbias);
    d_dinp.poison();
    cpu::layernorm_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                            mean.data(), rstd.data(), shape.rows, shape.channels);
    DeviceBuffer<float> d_dout(dout), d_inp(inp), d_weight(weight), d_mean(mean), d_rstd(rstd);
    DeviceBuffer<char> scratch(layernorm_backward_scratch_bytes(shape.rows, shape.channels));
    layernorm_backward(d_dinp.get(), d_dweight.get(), d_dbias.get(), d_dout.get(), d_inp.get(), d_weight.get(),
                       d_mean.get(), d_rstd.get(), shape.rows, shape.channels, compute_stream(),
                       /*overwrite_dinp=*/true, scratch.get());
    expect_close(d_dinp.download(), dinp, kFloat32, name("overwritten dinp", shape));
    expect_close(d_dweight.download(), dweight, kFloat32, name("row-split dweight", shape));
    expect_close(d_dbias.download(), dbias, kFloat32, name("row-split dbias", shape));
  }
}

TEST(CudaLayerNorm, BackwardSkipsNullGradients) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  set_device(0);
  std::mt19937 rng(4);
  const Shape shape{37, 771};
  const auto n = static_cast<size_t>(shape.rows * shape.channels);
  const auto channels = static_cast<size_t>(shape.channels);
  const std::vector<float> inp = random_floats(n, rng), dout = random_floats(n, rng);
  const std::vector<float> weight = random_floats(channels, rng, 0.5f, 1.5f), bias = random_floats(channels, rng);
  std::vector<float> out(n), mean(static_cast<size_t>(shape.rows)), rstd(mean.size());
  cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(), shape.rows,
                         shape.channels, kEps);
  std::vector<float> dbias(channels, 0.0f);
  cpu::layernorm_backward(nullptr, nullptr, dbias.data(), dout.data(), inp.data(), weight.data(), mean.data(),
                          rstd.data(), shape.rows, shape.channels);

  DeviceBuffer<float> d_dbias(std::vector<float>(channels, 0.0f));
  DeviceBuffer<float> d_dout(dout), d_inp(inp), d_weight(weight), d_mean(mean), d_rstd(rstd);
  layernorm_backward(nullptr, nullptr, d_dbias.get(), d_dout.get(), d_inp.get(), d_weight.get(), d_mean.get(),
                     d_rstd.get(), shape.rows, shape.channels, compute_stream());
  expect_close(d_dbias.download(), dbias, kFloat32, "dbias alone");
}

}  // namespace
}  // namespace meridian::ops::cuda

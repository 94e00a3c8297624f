// bf16 mixed precision on a CUDA device against the cpu engine's bf16 path: every differentiable
// function on bf16 activations and fp32 master weights, forward and every input gradient, on the same
// inputs and upstream gradients; and the dtype conversions. Skips without a GPU.
//
// Tolerance: both sides compute in fp32 on the same bf16 operands and round each bf16 output once,
// but in different summation orders, and an output near a rounding boundary can land one bf16 step
// (2⁻⁸ relative) apart: |gpu − cpu| ≤ 1e-2 · (1 + |cpu|) for bf16 outputs and gradients. fp32 master
// gradients come from bf16 products on both sides and are held to the same bound.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/functions/functions.h"
#include "core/functions/working_copies.h"
#include "core/tensor.h"
#include "tensor_testing.h"
#include "cuda_test_support.h"

namespace meridian {
namespace {

using testing::random_tensor;

const Device kGpu = Device::cuda(0);
constexpr double kBf16 = 1e-2;

void expect_close(const Tensor& gpu, const Tensor& cpu, const std::string& what) {
  ASSERT_TRUE(gpu.device().is_cuda()) << what;
  ASSERT_EQ(gpu.dtype(), cpu.dtype()) << what;
  ASSERT_EQ(gpu.shape(), cpu.shape()) << what;
  const std::vector<float> g = gpu.to_float_vector(), c = cpu.to_float_vector();
  int reported = 0;
  for (size_t i = 0; i < c.size(); ++i)
    if (!(std::abs(static_cast<double>(g[i]) - c[i]) <= kBf16 * (1.0 + std::abs(c[i]))) && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: gpu " << g[i] << ", cpu " << c[i];
}

struct Input {
  Tensor values;  // on the cpu; activations are converted to bf16, the rest passed as they are
  bool activation;
  bool needs_grad = true;
};

// Twice, as tests/cuda/engine_test.cpp: on leaf inputs, and on inputs passed through
// fn::scale(·, 1) so that the GPU fills fresh gradient buffers (BackwardContext::gradient_target).
void check_function(const std::string& name, const std::vector<Input>& inputs,
                    const std::function<Tensor(const std::vector<Tensor>&)>& function, std::mt19937& rng) {
  for (const bool non_leaf : {false, true}) {
    const std::string label = name + (non_leaf ? " (non-leaf inputs)" : "");
    std::vector<Tensor> cpu, gpu, cpu_arguments, gpu_arguments;
    for (const Input& input : inputs) {
      Tensor host = input.activation ? input.values.to(DType::bf16) : input.values.clone();
      Tensor device = host.to(kGpu);
      if (input.needs_grad) {
        host.set_requires_grad(true);
        device.set_requires_grad(true);
      }
      cpu.push_back(host);
      gpu.push_back(device);
      cpu_arguments.push_back(non_leaf && input.needs_grad ? fn::scale(host, 1.0f) : host);
      gpu_arguments.push_back(non_leaf && input.needs_grad ? fn::scale(device, 1.0f) : device);
    }
    const Tensor cpu_out = function(cpu_arguments), gpu_out = function(gpu_arguments);
    expect_close(gpu_out, cpu_out, label + " forward");
    const Tensor upstream = random_tensor(cpu_out.shape(), rng).to(cpu_out.dtype());
    cpu_out.backward(upstream);
    gpu_out.backward(upstream.to(kGpu));
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].needs_grad) continue;
      ASSERT_TRUE(gpu[i].grad().defined()) << label << " input " << i;
      expect_close(gpu[i].grad(), cpu[i].grad(), label + " gradient of input " + std::to_string(i));
    }
  }
}

class CudaMixedPrecision : public ::testing::Test {
 protected:
  void SetUp() override { MERIDIAN_REQUIRE_CUDA_DEVICE(); }
  std::mt19937 rng{20261125};
};

TEST_F(CudaMixedPrecision, ConversionsRoundAsTheCpuDoes) {
  const Tensor x = random_tensor({100003}, rng, -100.0f, 100.0f);
  const Tensor on_gpu = x.to(kGpu).to(DType::bf16);
  EXPECT_EQ(on_gpu.to(Device::cpu()).to_float_vector(), x.to(DType::bf16).to_float_vector());  // exact
  EXPECT_EQ(on_gpu.to(DType::f32).to_float_vector(), x.to(DType::bf16).to_float_vector());
  Tensor back = Tensor::empty({100003}, DType::f32, kGpu);
  back.copy_(x.to(DType::bf16));  // converted on the host, then copied
  EXPECT_EQ(back.to_float_vector(), x.to(DType::bf16).to_float_vector());
}

TEST_F(CudaMixedPrecision, LinearAndLayerNormOnMasterWeights) {
  check_function("linear",
                 {{random_tensor({2, 37, 96}, rng), true}, {random_tensor({67, 96}, rng), false},
                  {random_tensor({67}, rng), false}},
                 [](const std::vector<Tensor>& in) { return fn::linear(in[0], in[1], in[2]); }, rng);
  // bf16: the GELU runs in cuBLASLt's epilogue on the fp32 product (72 outputs: a multiple of 8, as
  // the aux output needs); the cpu rounds the GELU's input to bf16 first: one bf16 step apart at most.
  check_function("linear_gelu",
                 {{random_tensor({2, 37, 96}, rng), true}, {random_tensor({72, 96}, rng), false},
                  {random_tensor({72}, rng), false}},
                 [](const std::vector<Tensor>& in) { return fn::linear_gelu(in[0], in[1], in[2]); }, rng);
  check_function("layer_norm",
                 {{random_tensor({3, 29, 77}, rng), true}, {random_tensor({77}, rng), false},
                  {random_tensor({77}, rng), false}},
                 [](const std::vector<Tensor>& in) { return fn::layer_norm(in[0], in[1], in[2]); }, rng);
}

// LayerNorm's master-weight gradients on bf16 activations are fp32 sums on both sides (the kernel
// writes the fp32 gradients directly, as the cpu does), so they agree to the fp32 bound, far inside
// one bf16 step: a gradient rounded to bf16 on the way would miss it.
TEST_F(CudaMixedPrecision, LayerNormMasterGradientsAreNotRoundedToBf16) {
  const Tensor x = random_tensor({3, 29, 77}, rng).to(DType::bf16);
  const Tensor upstream = random_tensor({3, 29, 77}, rng).to(DType::bf16);
  const Tensor weight_values = random_tensor({77}, rng), bias_values = random_tensor({77}, rng);
  Tensor weights[2][2];  // [cpu, gpu][weight, bias], fp32 masters
  for (const bool on_gpu : {false, true}) {
    const Device device = on_gpu ? kGpu : Device::cpu();
    Tensor weight = weight_values.to(device).clone(), bias = bias_values.to(device).clone();
    weight.set_requires_grad(true);
    bias.set_requires_grad(true);
    fn::layer_norm(x.to(device), weight, bias).backward(upstream.to(device));
    weights[on_gpu][0] = weight;
    weights[on_gpu][1] = bias;
  }
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(weights[1][i].grad().dtype(), DType::f32);
    const std::vector<float> g = weights[1][i].grad().to_float_vector(), c = weights[0][i].grad().to_float_vector();
    for (size_t j = 0; j < c.size(); ++j)
      EXPECT_NEAR(g[j], c[j], 1e-5 * (1.0 + std::abs(c[j]))) << (i == 0 ? "weight" : "bias") << " gradient [" << j
                                                            << "]";
  }
}

// fn::WorkingCopies on the GPU: one bf16 copy per master weight, made on the device, serves both
// micro-batches of an accumulation, and every output and fp32 gradient has the bits of converting at
// each use (the kernels are deterministic).
TEST_F(CudaMixedPrecision, WorkingCopiesServeEveryMicroBatchWithTheSameBits) {
  const Tensor values[4] = {random_tensor({67, 96}, rng), random_tensor({67}, rng), random_tensor({67}, rng),
                            random_tensor({67}, rng)};
  const Tensor inputs[2] = {random_tensor({2, 37, 96}, rng).to(DType::bf16).to(kGpu),
                            random_tensor({2, 37, 96}, rng).to(DType::bf16).to(kGpu)};
  std::vector<float> results[2];  // [per use, working copies]: outputs, then the four gradients
  for (const bool scoped : {false, true}) {
    Tensor weights[4];
    for (int i = 0; i < 4; ++i) weights[i] = values[i].to(kGpu).clone().set_requires_grad(true);
    std::optional<fn::WorkingCopies> copies;
    if (scoped) copies.emplace();
    std::vector<float>& result = results[scoped];
    for (const Tensor& x : inputs) {
      const Tensor y = fn::layer_norm(fn::linear(x, weights[0], weights[1]), weights[2], weights[3]);
      fn::sum(y).backward();
      const std::vector<float> out = y.to_float_vector();
      result.insert(result.end(), out.begin(), out.end());
    }
    if (scoped) {
      EXPECT_EQ(copies->conversions(), 4);
      const Tensor copy = fn::detail::working_copy(weights[0], DType::bf16);
      EXPECT_TRUE(copy.device().is_cuda());
      EXPECT_EQ(copies->conversions(), 4);  // the copy made by the first micro-batch
    }
    for (const Tensor& w : weights) {
      ASSERT_EQ(w.grad().dtype(), DType::f32);
      const std::vector<float> grad = w.grad().to_float_vector();
      result.insert(result.end(), grad.begin(), grad.end());
    }
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t i = 0; i < results[0].size(); ++i) ASSERT_EQ(results[1][i], results[0][i]) << "value " << i;
}

// fn::mlp in bf16 against its own composition on the GPU, linear(linear_gelu(...)): the forward runs
// the same kernels (same bits), as does c_proj's weight gradient; the rest differ by where GELU's
// derivative is applied: the composition rounds the GELU output's gradient to bf16 and then
// multiplies, fn::mlp multiplies c_proj's fp32 product in the DGELU epilogue (hidden 72: a multiple
// of 8) and rounds once, so the gradient of the GELU's input differs by up to a bf16 step, which the
// next product sums over the hidden width. Weights at GPT-2-like scale (±0.1, as
// tests/cuda/matmul_test.cpp) keep that sum's spread inside the 1e-2 bound; a wrong derivative or aux
// input moves these gradients by tens of percent. (The composition's functions are checked against
// the cpu above, and the DGELU product itself in tests/cuda/matmul_test.cpp.)
TEST_F(CudaMixedPrecision, MlpMatchesItsCompositionOnTheGpu) {
  const std::vector<Tensor> values = {random_tensor({2, 37, 48}, rng).to(DType::bf16),
                                      random_tensor({72, 48}, rng, -0.1f, 0.1f), random_tensor({72}, rng),
                                      random_tensor({48, 72}, rng, -0.1f, 0.1f), random_tensor({48}, rng)};
  const auto leaves = [&values] {
    std::vector<Tensor> out;
    for (const Tensor& v : values) out.push_back(v.to(kGpu).clone().set_requires_grad(true));
    return out;
  };
  const std::vector<Tensor> fused = leaves(), composed = leaves();
  const Tensor fused_out = fn::mlp(fused[0], fused[1], fused[2], fused[3], fused[4]);
  const Tensor composed_out = fn::linear(fn::linear_gelu(composed[0], composed[1], composed[2]), composed[3], composed[4]);
  EXPECT_EQ(fused_out.to_float_vector(), composed_out.to_float_vector()) << "forward: the same kernels";
  const Tensor upstream = random_tensor(fused_out.shape(), rng).to(DType::bf16).to(kGpu);
  fused_out.backward(upstream);
  composed_out.backward(upstream);
  for (size_t i = 0; i < values.size(); ++i)
    expect_close(fused[i].grad(), composed[i].grad(), "mlp gradient of input " + std::to_string(i));
  EXPECT_EQ(fused[3].grad().to_float_vector(), composed[3].grad().to_float_vector()) << "c_proj's weight: same kernel";
}

TEST_F(CudaMixedPrecision, ElementwiseAttentionAndLoss) {
  check_function("gelu", {{random_tensor({1031}, rng, -4.0f, 4.0f), true}},
                 [](const std::vector<Tensor>& in) { return fn::gelu(in[0]); }, rng);
  check_function("add (broadcast)", {{random_tensor({3, 7, 45}, rng), true}, {random_tensor({7, 45}, rng), true}},
                 [](const std::vector<Tensor>& in) { return fn::add(in[0], in[1]); }, rng);
  check_function("scale", {{random_tensor({999}, rng), true}},
                 [](const std::vector<Tensor>& in) { return fn::scale(in[0], -0.37f); }, rng);
  check_function("cast to bf16", {{random_tensor({4, 33}, rng), false}},
                 [](const std::vector<Tensor>& in) { return fn::cast(in[0], DType::bf16); }, rng);
  std::vector<int32_t> targets(2 * 19);
  for (size_t i = 0; i < targets.size(); ++i) targets[i] = static_cast<int32_t>((i * 37) % 100);
  targets[5] = -1;
  check_function("cross_entropy",
                 {{random_tensor({2, 19, 128}, rng, -3.0f, 3.0f), true},
                  {Tensor::from_vector(targets, {2, 19}), false, false}},
                 [](const std::vector<Tensor>& in) { return fn::cross_entropy(in[0], in[1], 100); }, rng);
}

// Both bf16 kernels against the cpu: head sizes 16 and 64 (flash's tiles, several key tiles at
// T = 130) and 20 (not a multiple of 16: flash falls back to the batched products).
TEST_F(CudaMixedPrecision, AttentionOnBothBf16Kernels) {
  struct Case {
    int64_t B, T, C, NH;
  };
  const Case cases[] = {{2, 37, 48, 3}, {1, 130, 128, 2}, {2, 67, 60, 3}};
  for (const fn::CudaBf16Attention kernel : {fn::CudaBf16Attention::flash, fn::CudaBf16Attention::batched_matmul}) {
    fn::set_cuda_bf16_attention(kernel);
    for (const Case& c : cases) {
      const std::string name = std::string("causal_self_attention (") +
                               (kernel == fn::CudaBf16Attention::flash ? "flash" : "batched_matmul") +
                               ", T=" + std::to_string(c.T) + ", hs=" + std::to_string(c.C / c.NH) + ")";
      check_function(name, {{random_tensor({c.B, c.T, 3 * c.C}, rng), true}},
                     [&c](const std::vector<Tensor>& in) { return fn::causal_self_attention(in[0], c.NH); }, rng);
    }
  }
  fn::set_cuda_bf16_attention(fn::CudaBf16Attention::flash);
}

}  // namespace
}  // namespace meridian

// GPT-2 on a CUDA device against the cpu engine: the same tiny model (initialised on the host, one
// copy moved to the GPU) on the same batches. The first loss matches to 1e-4 and the loss curve of
// 20 AdamW steps (global-norm clipping included) tracks the cpu's, in fp32 and in bf16 mixed
// precision. Skips without a GPU.
//
// Tolerances: the first step's loss differs only by fp32 reordering inside the kernels (~1e-6), so
// 1e-4 is the bound with margin. Later steps compound those differences through AdamW,
// whose update m/(√v + eps) amplifies relative differences of tiny gradients; 20 steps stay within
// 1e-3 of the cpu's loss (and the gradient norm within 1e-3 relative) unless something is wrong, in
// which case the curves part by far more.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/functions/functions.h"
#include "core/optim/optimizer.h"
#include "cuda_test_support.h"
#include "models/gpt2.h"

namespace meridian {
namespace {

const Device kGpu = Device::cuda(0);

models::Gpt2Config tiny_config() {
  models::Gpt2Config config;
  config.max_seq_len = 16;
  config.vocab_size = 100;
  config.padded_vocab_size = 128;
  config.num_layers = 2;
  config.num_heads = 2;
  config.channels = 32;
  config.validate();
  return config;
}

Tensor random_tokens(int64_t B, int64_t T, int32_t vocab, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> distribution(0, vocab - 1);
  std::vector<int32_t> values(static_cast<size_t>(B * T));
  for (int32_t& v : values) v = distribution(rng);
  return Tensor::from_vector(values, {B, T});
}

double grad_norm_of(const optim::Optimizer& optimizer) {
  std::vector<Tensor> grads;
  for (const auto& p : optimizer.params()) grads.push_back(p.param.grad());
  return optim::global_grad_norm(grads);
}

TEST(CudaGpt2, MovingToTheDeviceKeepsEveryParameterBitForBit) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  models::Gpt2 cpu_model(tiny_config());
  cpu_model.initialize(7);
  models::Gpt2 gpu_model(tiny_config());
  gpu_model.to(kGpu);
  gpu_model.initialize(7);  // on the host, then copied
  const auto cpu_params = cpu_model.named_parameters();
  const auto gpu_params = gpu_model.named_parameters();
  ASSERT_EQ(cpu_params.size(), gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    ASSERT_TRUE(gpu_params[i].tensor.device() == kGpu) << gpu_params[i].name;
    EXPECT_EQ(gpu_params[i].tensor.to_float_vector(), cpu_params[i].tensor.to_float_vector()) << gpu_params[i].name;
  }
}

// Both engines in `dtype` on the same fp32 master weights and batches: the first loss within
// `first_loss` of the cpu's, the next 19 within `later_loss`, each gradient norm within `norm`
// (relative).
void expect_tracks_cpu(DType dtype, double first_loss, double later_loss, double norm) {
  const models::Gpt2Config config = tiny_config();
  models::Gpt2 cpu_model(config);
  cpu_model.initialize(1337);
  cpu_model.set_compute_dtype(dtype);
  models::Gpt2 gpu_model(config);
  gpu_model.initialize(1337);
  gpu_model.to(kGpu);
  gpu_model.set_compute_dtype(dtype);
  const optim::AdamWOptions adamw{0.9f, 0.95f, 1e-8f, 0.1f};
  optim::AdamW cpu_optimizer(optim::optimizer_params(cpu_model.named_parameters()), adamw);
  optim::AdamW gpu_optimizer(optim::optimizer_params(gpu_model.named_parameters()), adamw);

  std::mt19937 rng(42);
  const int64_t B = 3, T = 13;  // 39 rows: not a multiple of any block size
  for (int step = 0; step < 20; ++step) {
    const Tensor tokens = random_tokens(B, T + 1, static_cast<int32_t>(config.vocab_size), rng);
    const Tensor inputs = tokens.narrow(1, 0, T).contiguous();
    const Tensor targets = tokens.narrow(1, 1, T).contiguous();
    cpu_optimizer.zero_grad();
    gpu_optimizer.zero_grad();
    const Tensor cpu_loss = cpu_model.loss(inputs, targets);
    const Tensor gpu_loss = gpu_model.loss(inputs.to(kGpu), targets.to(kGpu));
    ASSERT_TRUE(gpu_loss.device() == kGpu);
    const double expected = cpu_loss.item<double>(), got = gpu_loss.item<double>();
    EXPECT_NEAR(got, expected, step == 0 ? first_loss : later_loss) << dtype_name(dtype) << " loss at step " << step;
    cpu_loss.backward();
    gpu_loss.backward();
    const double cpu_norm = grad_norm_of(cpu_optimizer), gpu_norm = grad_norm_of(gpu_optimizer);
    EXPECT_NEAR(gpu_norm, cpu_norm, norm * cpu_norm) << dtype_name(dtype) << " gradient norm at step " << step;
    if (step == 0) {
      // Padded vocabulary rows get no gradient on the device either.
      const std::vector<float> wte_grad = gpu_model.tied_embedding().grad().to_float_vector();
      for (size_t i = static_cast<size_t>(config.vocab_size * config.channels); i < wte_grad.size(); ++i)
        ASSERT_EQ(wte_grad[i], 0.0f) << "padded row gradient at " << i;
    }
    const float lr = 1e-3f;
    cpu_optimizer.step(lr, optim::clip_coefficient(cpu_norm, 1.0));
    gpu_optimizer.step(lr, optim::clip_coefficient(gpu_norm, 1.0));
  }
}

TEST(CudaGpt2, TrainingStepsTrackTheCpuEngine) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  expect_tracks_cpu(DType::f32, 1e-4, 1e-3, 1e-3);
}

// bf16 mixed precision on both: the GPU's bf16 kernels against the cpu's bf16 path (fp32 arithmetic
// on bf16 operands, one rounding per output; core/functions/float_view.h). They differ in summation
// order and where the GPU rounds one more intermediate (LayerNorm weight gradients pass through a
// bf16 buffer), so the bound is bf16's: 1e-2 on the loss, 2e-2 relative on the norm.
TEST(CudaGpt2, Bf16TrainingStepsTrackTheCpuEngine) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  expect_tracks_cpu(DType::bf16, 1e-2, 1e-2, 2e-2);
}

// Activation recompute on the GPU: each block's forward runs again during backward on the same
// kernels and shapes, so the loss and every gradient are the same bits as without it (f32 and bf16).
TEST(CudaGpt2, RecomputeGivesTheSameGradients) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  const models::Gpt2Config config = tiny_config();
  std::mt19937 rng(9);
  const Tensor tokens = random_tokens(2, 12, static_cast<int32_t>(config.vocab_size), rng);
  const Tensor inputs = tokens.narrow(1, 0, 11).contiguous().to(kGpu);
  const Tensor targets = tokens.narrow(1, 1, 11).contiguous().to(kGpu);
  for (const DType dtype : {DType::f32, DType::bf16}) {
    std::vector<std::vector<float>> grads[2];
    float losses[2] = {0.0f, 0.0f};
    for (const bool recompute : {false, true}) {
      models::Gpt2 model(config);
      model.initialize(11);
      model.to(kGpu);
      model.set_compute_dtype(dtype);
      const Tensor loss = model.loss(inputs, targets, recompute);
      losses[recompute] = loss.item<float>();
      loss.backward();
      for (const auto& p : model.named_parameters()) grads[recompute].push_back(p.tensor.grad().to_float_vector());
    }
    EXPECT_EQ(losses[1], losses[0]) << dtype_name(dtype);
    ASSERT_EQ(grads[1].size(), grads[0].size());
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_EQ(grads[1][i], grads[0][i]) << dtype_name(dtype) << " parameter " << i;
  }
}

}  // namespace
}  // namespace meridian

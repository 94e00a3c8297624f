// Tensors and differentiable functions on a CUDA device against the cpu engine: every function of
// core/functions forward and backward on identical inputs and upstream gradients, tensor creation
// and copies, AdamW and the global norm, and the cross-device errors. Skips without a GPU.
//
// Tolerances: |gpu − cpu| ≤ atol + rtol·|cpu| with atol = rtol = 1e-5 (fp32), as the kernel tests
// use for the same kernels. The sums here are short (at most a few hundred terms: C = 96 for
// the products, B·T = 74 rows for the weight gradients), where fp32 reordering stays far below
// 1e-5 for values of order one; exact equality is asked where the kernels promise it (copies,
// the embedding, the sum, which the cuda path computes on the host in the cpu's order).
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <utility>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/functions/functions.h"
#include "core/optim/optimizer.h"
#include "core/tensor.h"
#include "tensor_testing.h"
#include "cuda_test_support.h"
#include "ops/cuda/device.h"

namespace meridian {
namespace {

using testing::random_tensor;
using testing::leaf;

const Device kGpu = Device::cuda(0);

Tensor random_ids(const Shape& shape, int32_t low, int32_t high, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> distribution(low, high - 1);
  std::vector<int32_t> values(static_cast<size_t>(shape_numel(shape)));
  for (int32_t& v : values) v = distribution(rng);
  return Tensor::from_vector(values, shape);
}

void expect_close(const Tensor& gpu, const Tensor& cpu, double tolerance, const std::string& what) {
  ASSERT_TRUE(gpu.device().is_cuda()) << what;
  ASSERT_EQ(gpu.shape(), cpu.shape()) << what;
  const std::vector<float> g = gpu.to_float_vector();
  const std::vector<float> c = cpu.to_float_vector();
  int reported = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    const double bound = tolerance + tolerance * std::abs(static_cast<double>(c[i]));
    if (!(std::abs(static_cast<double>(g[i]) - c[i]) <= bound) && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: gpu " << g[i] << ", cpu " << c[i];
  }
}

// A fresh copy of each input (a leaf again when it required grad), on `device`.
std::vector<Tensor> fresh_leaves(const std::vector<Tensor>& inputs, Device device) {
  std::vector<Tensor> out;
  for (const Tensor& input : inputs) {
    Tensor copy = input.detach().clone().to(device);
    if (input.requires_grad()) copy.set_requires_grad(true);
    out.push_back(copy);
  }
  return out;
}

// Runs `function` on copies of the cpu inputs and on copies of them on the GPU, compares the
// outputs, backpropagates the same random upstream gradient through both and compares every input
// gradient. Twice: on the leaves themselves (gradients accumulate into .grad), and on each leaf
// passed through fn::scale(·, 1) first, so that the function sees non-leaf inputs and, on the GPU,
// fills fresh gradient buffers instead of adding into zeroed ones (BackwardContext::gradient_target).
void check_function(const std::string& name, const std::vector<Tensor>& cpu_inputs,
                    const std::function<Tensor(const std::vector<Tensor>&)>& function, double tolerance,
                    std::mt19937& rng) {
  for (const bool non_leaf : {false, true}) {
    const std::string label = name + (non_leaf ? " (non-leaf inputs)" : "");
    const std::vector<Tensor> cpu_leaves = fresh_leaves(cpu_inputs, Device::cpu());
    const std::vector<Tensor> gpu_leaves = fresh_leaves(cpu_inputs, kGpu);
    const auto arguments = [non_leaf](const std::vector<Tensor>& leaves) {
      std::vector<Tensor> out;
      for (const Tensor& t : leaves) out.push_back(non_leaf && t.requires_grad() ? fn::scale(t, 1.0f) : t);
      return out;
    };
    const Tensor cpu_out = function(arguments(cpu_leaves));
    const Tensor gpu_out = function(arguments(gpu_leaves));
    expect_close(gpu_out, cpu_out, tolerance, label + " forward");
    const Tensor upstream = random_tensor(cpu_out.shape(), rng);
    cpu_out.backward(upstream);
    gpu_out.backward(upstream.to(kGpu));
    for (size_t i = 0; i < cpu_inputs.size(); ++i) {
      if (!cpu_inputs[i].requires_grad()) continue;
      ASSERT_TRUE(gpu_leaves[i].grad().defined()) << label << " input " << i;
      EXPECT_TRUE(gpu_leaves[i].grad().device() == kGpu) << label << " input " << i;
      expect_close(gpu_leaves[i].grad(), cpu_leaves[i].grad(), tolerance,
                   label + " gradient of input " + std::to_string(i));
    }
  }
}

constexpr double kFp32 = 1e-5;

class CudaEngine : public ::testing::Test {
 protected:
  void SetUp() override { MERIDIAN_REQUIRE_CUDA_DEVICE(); }
  std::mt19937 rng{20241124};
};

TEST_F(CudaEngine, TensorsLiveOnTheDeviceAndCopyBothWays) {
  const size_t before = allocator_for(kGpu).stats().allocated_bytes;
  Tensor zeros = Tensor::zeros({37, 5}, DType::f32, kGpu);
  EXPECT_TRUE(zeros.device() == kGpu);
  EXPECT_GT(allocator_for(kGpu).stats().allocated_bytes, before);
  for (float v : zeros.to_float_vector()) ASSERT_EQ(v, 0.0f);

  const Tensor host = random_tensor({37, 5}, rng);
  const Tensor device = host.to(kGpu);
  EXPECT_EQ(device.to(Device::cpu()).to_float_vector(), host.to_float_vector());  // exact round trip
  EXPECT_EQ(device.clone().to_float_vector(), host.to_float_vector());
  zeros.copy_(device);
  EXPECT_EQ(zeros.to_float_vector(), host.to_float_vector());
  zeros.fill_(2.5);
  for (float v : zeros.to_float_vector()) ASSERT_EQ(v, 2.5f);
  EXPECT_EQ(device.narrow(0, 3, 1).narrow(1, 2, 1).item<float>(), host.to_float_vector()[3 * 5 + 2]);

  const Tensor ids = random_ids({3, 4}, 0, 100, rng);
  EXPECT_EQ(ids.to(kGpu).to(Device::cpu()).to_float_vector(), ids.to_float_vector());
  Tensor int_zeros = Tensor::zeros({3, 4}, DType::i32, kGpu);
  for (float v : int_zeros.to_float_vector()) ASSERT_EQ(v, 0.0f);
}

// Strided views on the GPU are gathered by a kernel: contiguous(), copies to the host, to another
// dtype and into a dense cuda tensor give the cpu's values exactly.
TEST_F(CudaEngine, StridedViewsAreGathered) {
  const Tensor host = random_tensor({3, 5, 7}, rng);
  const Tensor device = host.to(kGpu);
  const Tensor views[][2] = {{device.narrow(1, 1, 3), host.narrow(1, 1, 3)},
                             {device.narrow(2, 2, 4), host.narrow(2, 2, 4)},
                             {device.select(2).narrow(0, 1, 3), host.select(2).narrow(0, 1, 3)}};
  for (const auto& [on_gpu, on_cpu] : views) {
    ASSERT_FALSE(on_gpu.is_contiguous() && on_gpu.numel() > 1 && on_gpu.shape() != on_cpu.shape());
    const Tensor dense = on_gpu.contiguous();
    EXPECT_TRUE(dense.device() == kGpu);
    EXPECT_TRUE(dense.is_contiguous());
    EXPECT_EQ(dense.to_float_vector(), on_cpu.contiguous().to_float_vector());
    EXPECT_EQ(on_gpu.to(Device::cpu()).to_float_vector(), on_cpu.contiguous().to_float_vector());
    EXPECT_EQ(on_gpu.to(DType::bf16).to_float_vector(), on_cpu.contiguous().to(DType::bf16).to_float_vector());
    Tensor target = Tensor::zeros(on_cpu.shape(), DType::f32, kGpu);
    target.copy_(on_gpu);
    EXPECT_EQ(target.to_float_vector(), on_cpu.contiguous().to_float_vector());
  }
}

// Writes into strided views on the GPU (a dense stand-in scattered into the view by a kernel) leave
// exactly the cpu's values, inside the view and around it: copies from the GPU, from the host, from
// a strided view and across dtypes, fill_ and zero_, into f32 and bf16 tensors.
TEST_F(CudaEngine, StridedViewsAreWritten) {
  using Write = std::function<void(Tensor view, const Tensor& source)>;  // source: the view's device
  const std::pair<const char*, Write> writes[] = {
      {"copy_", [](Tensor view, const Tensor& source) { view.copy_(source); }},
      {"copy_ from the host", [](Tensor view, const Tensor& source) { view.copy_(source.to(Device::cpu())); }},
      {"copy_ from f32", [](Tensor view, const Tensor& source) { view.copy_(source.to(DType::f32)); }},
      {"copy_ from a strided view",
       [](Tensor view, const Tensor& source) {
         Shape wider = source.shape();
         wider.back() += 3;
         Tensor padded = Tensor::zeros(wider, source.dtype(), source.device());
         padded.narrow(-1, 2, source.dim(-1)).copy_(source);
         view.copy_(padded.narrow(-1, 2, source.dim(-1)));
       }},
      {"fill_", [](Tensor view, const Tensor&) { view.fill_(1.25); }},
      {"zero_", [](Tensor view, const Tensor&) { view.zero_(); }},
  };
  const std::pair<const char*, std::function<Tensor(const Tensor&)>> views[] = {
      {"narrow(1, 1, 3)", [](const Tensor& t) { return t.narrow(1, 1, 3); }},
      {"narrow(2, 2, 4)", [](const Tensor& t) { return t.narrow(2, 2, 4); }},
      {"select(2).narrow(1, 2, 4)", [](const Tensor& t) { return t.select(2).narrow(1, 2, 4); }},
  };
  for (const DType dtype : {DType::f32, DType::bf16}) {
    for (const auto& [view_name, make_view] : views) {
      for (const auto& [write_name, write] : writes) {
        const std::string label =
            std::string(write_name) + " into " + view_name + " of " + std::string(dtype_name(dtype));
        const Tensor on_cpu = random_tensor({3, 5, 7}, rng).to(dtype);
        const Tensor on_gpu = on_cpu.to(kGpu);
        const Tensor view_cpu = make_view(on_cpu);
        ASSERT_FALSE(view_cpu.is_contiguous()) << label;
        const Tensor source = random_tensor(view_cpu.shape(), rng).to(dtype);
        write(view_cpu, source);
        write(make_view(on_gpu), source.to(kGpu));
        EXPECT_EQ(on_gpu.to_float_vector(), on_cpu.to_float_vector()) << label;
      }
    }
  }
}

// narrow's backward adds its gradient into a strided slice of its input's gradient: two overlapping
// slices along the inner axes, on the GPU as on the cpu.
TEST_F(CudaEngine, NarrowAlongInnerAxes) {
  const Tensor x = leaf(random_tensor({3, 5, 7}, rng));
  for (const int axis : {1, 2}) {
    check_function("narrow along axis " + std::to_string(axis), {x},
                   [axis](const std::vector<Tensor>& in) {
                     return fn::add(in[0].narrow(axis, 0, 3).contiguous(), in[0].narrow(axis, 2, 3).contiguous());
                   },
                   kFp32, rng);
  }
}

// Two GPUs: a copy between them gives the same bits (skipped with one).
TEST_F(CudaEngine, CopiesBetweenGpus) {
  if (ops::cuda::device_count() < 2) GTEST_SKIP() << "needs two GPUs";
  const Tensor host = random_tensor({1031}, rng);
  const Tensor first = host.to(kGpu);
  const Tensor second = first.to(Device::cuda(1));
  EXPECT_TRUE(second.device() == Device::cuda(1));
  EXPECT_EQ(second.to_float_vector(), host.to_float_vector());
  EXPECT_EQ(second.to(kGpu).to_float_vector(), host.to_float_vector());
}

TEST_F(CudaEngine, Linear) {
  check_function("linear", {leaf(random_tensor({2, 37, 96}, rng)), leaf(random_tensor({67, 96}, rng)),
                            leaf(random_tensor({67}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::linear(in[0], in[1], in[2]); }, kFp32, rng);
  check_function("linear without bias", {leaf(random_tensor({5, 33}, rng)), leaf(random_tensor({7, 33}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::linear(in[0], in[1]); }, kFp32, rng);
}

// The GELU in the product's epilogue (fp32: bias in the epilogue, the GELU as an exact fp32 pass).
TEST_F(CudaEngine, LinearGelu) {
  check_function("linear_gelu", {leaf(random_tensor({2, 37, 96}, rng)), leaf(random_tensor({67, 96}, rng)),
                                 leaf(random_tensor({67}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::linear_gelu(in[0], in[1], in[2]); }, kFp32, rng);
}

// The MLP as one function: hidden widths 67 (GELU's derivative as its own pass) and 72 (a multiple
// of 8; fp32 still takes the exact pass, as the epilogue is only used for bf16), with and without
// c_proj's bias.
TEST_F(CudaEngine, Mlp) {
  for (const int64_t hidden : {67, 72}) {
    const std::vector<Tensor> inputs = {leaf(random_tensor({2, 37, 48}, rng)), leaf(random_tensor({hidden, 48}, rng)),
                                        leaf(random_tensor({hidden}, rng)), leaf(random_tensor({48, hidden}, rng)),
                                        leaf(random_tensor({48}, rng))};
    check_function("mlp (hidden " + std::to_string(hidden) + ")", inputs,
                   [](const std::vector<Tensor>& in) { return fn::mlp(in[0], in[1], in[2], in[3], in[4]); }, kFp32,
                   rng);
    check_function("mlp without c_proj bias (hidden " + std::to_string(hidden) + ")",
                   {inputs.begin(), inputs.begin() + 4},
                   [](const std::vector<Tensor>& in) { return fn::mlp(in[0], in[1], in[2], in[3]); }, kFp32, rng);
  }
}

TEST_F(CudaEngine, LayerNorm) {
  check_function("layer_norm", {leaf(random_tensor({3, 29, 77}, rng)), leaf(random_tensor({77}, rng)),
                                leaf(random_tensor({77}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::layer_norm(in[0], in[1], in[2]); }, kFp32, rng);
}

TEST_F(CudaEngine, GeluAddScaleSum) {
  check_function("gelu", {leaf(random_tensor({1031}, rng, -4.0f, 4.0f))},
                 [](const std::vector<Tensor>& in) { return fn::gelu(in[0]); }, kFp32, rng);
  check_function("add (same shape)", {leaf(random_tensor({4, 45}, rng)), leaf(random_tensor({4, 45}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::add(in[0], in[1]); }, kFp32, rng);
  check_function("add (broadcast suffix)", {leaf(random_tensor({3, 7, 45}, rng)), leaf(random_tensor({7, 45}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::add(in[0], in[1]); }, kFp32, rng);
  // One repeat of a suffix shape: a micro-batch of one sequence plus the position embedding.
  check_function("add (suffix, one repeat)", {leaf(random_tensor({1, 7, 45}, rng)), leaf(random_tensor({7, 45}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::add(in[0], in[1]); }, kFp32, rng);
  // The residual add hands its gradient to both inputs; h's other consumer (the linear, whose input
  // gradient is a product that must not read what it writes) then adds into h's gradient while the
  // linear's output still holds that same gradient, so the engine copies it first.
  check_function("add (residual around a square linear)",
                 {leaf(random_tensor({5, 33}, rng)), leaf(random_tensor({33, 33}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::add(fn::linear(in[0], in[1]), in[0]); }, kFp32,
                 rng);
  check_function("scale", {leaf(random_tensor({999}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::scale(in[0], -0.37f); }, kFp32, rng);
  check_function("sum", {leaf(random_tensor({1000}, rng))}, [](const std::vector<Tensor>& in) { return fn::sum(in[0]); },
                 0.0, rng);
}

TEST_F(CudaEngine, CausalSelfAttention) {
  check_function("causal_self_attention", {leaf(random_tensor({2, 37, 3 * 48}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::causal_self_attention(in[0], 3); }, kFp32, rng);
}

TEST_F(CudaEngine, EmbeddingAndSlice) {
  const Tensor ids = random_ids({3, 41}, 0, 97, rng);  // repeats: the backward sums them
  check_function("embedding", {ids, leaf(random_tensor({97, 35}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::embedding(in[0], in[1]); }, 0.0, rng);
  check_function("embedding_slice", {ids, leaf(random_tensor({40, 35}, rng))},
                 [](const std::vector<Tensor>& in) { return fn::embedding_slice(in[0], in[1], 30); }, 0.0, rng);
}

TEST_F(CudaEngine, CrossEntropyWithPaddingAndIgnoredTargets) {
  Tensor targets = random_ids({2, 19}, 0, 100, rng);
  targets.data<int32_t>()[5] = -1;  // ignored
  check_function("cross_entropy", {leaf(random_tensor({2, 19, 128}, rng, -3.0f, 3.0f)), targets},
                 [](const std::vector<Tensor>& in) { return fn::cross_entropy(in[0], in[1], 100); }, kFp32, rng);
}

// The training-step path: logits produced by another function (not a leaf), their gradient computed
// in the forward pass and handed over for an upstream gradient of 1, scaled and added for another
// (gradient accumulation's 1/steps); both against the cpu.
TEST_F(CudaEngine, CrossEntropyGradientFromTheForwardPass) {
  Tensor targets = random_ids({3, 11}, 0, 90, rng);
  targets.data<int32_t>()[4] = -1;  // ignored
  const Tensor values = random_tensor({3, 11, 96}, rng, -3.0f, 3.0f);
  for (const float upstream : {1.0f, 0.25f}) {
    std::vector<float> grads[2];
    for (const Device device : {Device::cpu(), kGpu}) {
      const Tensor x = leaf(values.to(device));
      const Tensor loss = fn::cross_entropy(fn::scale(x, 1.0f), targets.to(device), 90);
      loss.backward(Tensor::full({}, upstream).to(device));
      grads[device.is_cuda()] = x.grad().to_float_vector();
    }
    ASSERT_EQ(grads[1].size(), grads[0].size());
    for (size_t i = 0; i < grads[0].size(); ++i)
      ASSERT_NEAR(grads[1][i], grads[0][i], kFp32 * (1.0 + std::abs(grads[0][i]))) << "upstream " << upstream << " at " << i;
  }
}

TEST_F(CudaEngine, AdamWAndGlobalNormMatchTheCpu) {
  std::vector<Tensor> cpu_params = {random_tensor({67, 33}, rng), random_tensor({67}, rng)};
  std::vector<Tensor> gpu_params;
  std::vector<optim::OptimizerParam> cpu_list, gpu_list;
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    cpu_params[i].set_requires_grad(true);
    Tensor gpu = leaf(cpu_params[i].to(kGpu));
    const Tensor grad = random_tensor(cpu_params[i].shape(), rng);
    cpu_params[i].set_grad(grad);
    gpu.set_grad(grad.to(kGpu));
    gpu_params.push_back(gpu);
    const char* name = i == 0 ? "matrix" : "vector";
    cpu_list.push_back({name, cpu_params[i], i == 0});
    gpu_list.push_back({name, gpu, i == 0});
  }
  const double cpu_norm = optim::global_grad_norm({cpu_params[0].grad(), cpu_params[1].grad()});
  const double gpu_norm = optim::global_grad_norm({gpu_params[0].grad(), gpu_params[1].grad()});
  EXPECT_NEAR(gpu_norm, cpu_norm, 1e-12 * cpu_norm);  // double accumulation on both
  optim::AdamW cpu_adam(cpu_list, {0.9f, 0.95f, 1e-8f, 0.1f});
  optim::AdamW gpu_adam(gpu_list, {0.9f, 0.95f, 1e-8f, 0.1f});
  for (int step = 0; step < 3; ++step) {
    cpu_adam.step(1e-2f, 0.5f);
    gpu_adam.step(1e-2f, 0.5f);
  }
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    expect_close(gpu_params[i], cpu_params[i], kFp32, "adamw parameter " + std::to_string(i));
    expect_close(gpu_adam.second_moment(i), cpu_adam.second_moment(i), kFp32, "adamw v " + std::to_string(i));
  }
  gpu_adam.zero_grad();
  for (float v : gpu_params[0].grad().to_float_vector()) ASSERT_EQ(v, 0.0f);
}

TEST_F(CudaEngine, GradientsAccumulateOverBackwardPasses) {
  Tensor x = leaf(random_tensor({4, 33}, rng).to(kGpu));
  const Tensor w = random_tensor({5, 33}, rng).to(kGpu);
  fn::sum(fn::linear(x, w)).backward();
  const std::vector<float> once = x.grad().to_float_vector();
  fn::sum(fn::linear(x, w)).backward();
  const std::vector<float> twice = x.grad().to_float_vector();
  for (size_t i = 0; i < once.size(); ++i) ASSERT_FLOAT_EQ(twice[i], 2.0f * once[i]);
}

TEST_F(CudaEngine, CrossDeviceMisuseNamesTheFunctionAndDevices) {
  const Tensor x_gpu = random_tensor({2, 8}, rng).to(kGpu);
  const Tensor w_cpu = random_tensor({3, 8}, rng);
  try {
    fn::linear(x_gpu, w_cpu);
    FAIL() << "linear across devices did not throw";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("linear"), std::string::npos) << message;
    EXPECT_NE(message.find("input on cuda:0"), std::string::npos) << message;
    EXPECT_NE(message.find("weight on cpu"), std::string::npos) << message;
  }
  EXPECT_THROW(fn::add(x_gpu, random_tensor({2, 8}, rng)), Error);
  EXPECT_THROW(fn::cross_entropy(x_gpu, random_ids({2}, 0, 8, rng), 8), Error);
  EXPECT_THROW(fn::embedding(random_ids({2}, 0, 3, rng), w_cpu.to(kGpu).narrow(0, 0, 3)), Error);  // ids on cpu
  Tensor grad_on_cpu = random_tensor({2, 3}, rng);
  Tensor out = fn::linear(leaf(x_gpu.clone()), w_cpu.to(kGpu));
  EXPECT_THROW(out.backward(grad_on_cpu), Error);
}

TEST_F(CudaEngine, EmbeddingIdsAreCheckedOnTheHost) {
  const Tensor table = random_tensor({5, 4}, rng).to(kGpu);
  const Tensor bad = Tensor::from_vector<int32_t>({1, 7}, {2}).to(kGpu);
  EXPECT_THROW(fn::embedding(bad, table), Error);
  const Tensor targets = Tensor::from_vector<int32_t>({1, 9}, {2}).to(kGpu);
  EXPECT_THROW(fn::cross_entropy(random_tensor({2, 8}, rng).to(kGpu), targets, 8), Error);
}

}  // namespace
}  // namespace meridian

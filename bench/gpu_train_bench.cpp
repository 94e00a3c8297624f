// gpu_train_bench: GPT-2 training steps on one GPU — tokens/s, MFU and a per-op time breakdown.
//
//   gpu_train_bench [--model gpt2-124m] [--seq-len 1024] [--batches 8,16,24,32] [--dtype bf16]
//                   [--steps 10] [--warmup 3] [--profile-steps 2] [--attention flash|batched_matmul]
//                   [--flash-query-rows 16|32]
//
// For each micro-batch size: the model (initialised on the host, moved to cuda:0, fp32 master weights,
// compute in --dtype) runs --warmup untimed steps and --steps timed ones (forward, backward, global
// norm, AdamW) on random tokens; a size that does not fit reports the out-of-memory error and the
// next is tried. MFU counts 6N + 6·L·C·T flops per token (llm.c's numerator) over the dense bf16 peak
// of an H100/H200 SXM (989 TFLOP/s) and over the ~790 TFLOP/s a large bf16 matmul measured on the lent
// H200s (for f32: 67 TFLOP/s, the CUDA-core peak). The fastest size is then profiled for
// --profile-steps steps with the device synchronised at every profiler scope, so each op's row is the
// time of its kernels (the synchronising makes those steps slower; the throughput rows do not sync).
// --attention picks the bf16 attention kernel (fn::set_cuda_bf16_attention) to compare the two;
// --flash-query-rows the query rows per warp of the flash forward and dQ kernels (set_flash_query_rows_per_warp).
// Needs a GPU: without one it prints why and exits 77 (skipped).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/functions/functions.h"
#include "core/optim/optimizer.h"
#include "core/profiler.h"
#include "models/gpt2.h"
#include "ops/cuda/device.h"
#include "ops/cuda/flash_attention.h"
#include "ops/cuda/matmul.h"
#include "ops/cuda/runtime.h"

namespace meridian {
namespace {

constexpr double kBf16DatasheetTflops = 989.0;
constexpr double kBf16MeasuredTflops = 790.0;
constexpr double kFp32Tflops = 67.0;
const Device kGpu = Device::cuda(0);

struct Options {
  std::string model = "gpt2-124m";
  int64_t seq_len = 1024;
  std::vector<int64_t> batches{8, 16, 24, 32};
  DType dtype = DType::bf16;
  int steps = 10, warmup = 3, profile_steps = 2;
};

struct Result {
  int64_t batch = 0;
  double ms_per_step = 0.0;
  double tokens_per_second = 0.0;
  double peak_gib = 0.0;
  std::string error;  // non-empty: did not run (out of memory)
};

void synchronize_gpu() { ops::cuda::synchronize(ops::cuda::compute_stream(0)); }

class Trainer {
 public:
  Trainer(const Options& options, int64_t batch) : model_(models::Gpt2Config::preset(options.model)) {
    model_.initialize(1337);
    model_.to(kGpu);
    model_.set_compute_dtype(options.dtype);
    adam_ = std::make_unique<optim::AdamW>(optim::optimizer_params(model_.named_parameters()),
                                           optim::AdamWOptions{0.9f, 0.95f, 1e-8f, 0.1f});
    std::mt19937 rng(7);
    std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(model_.config().vocab_size) - 1);
    std::vector<int32_t> values(static_cast<size_t>(batch * (options.seq_len + 1)));
    for (int32_t& v : values) v = token(rng);
    const Tensor tokens = Tensor::from_vector(values, {batch, options.seq_len + 1});
    inputs_ = tokens.narrow(1, 0, options.seq_len).contiguous().to(kGpu);
    targets_ = tokens.narrow(1, 1, options.seq_len).contiguous().to(kGpu);
  }

  double step() {
    adam_->zero_grad();
    const Tensor loss = model_.loss(inputs_, targets_);
    const double value = loss.item<double>();
    loss.backward();
    std::vector<Tensor> grads;
    for (const auto& p : adam_->params()) grads.push_back(p.param.grad());
    adam_->step(3e-4f, optim::clip_coefficient(optim::global_grad_norm(grads), 1.0));
    return value;
  }

  const models::Gpt2& model() const { return model_; }

 private:
  models::Gpt2 model_;
  std::unique_ptr<optim::AdamW> adam_;
  Tensor inputs_, targets_;
};

Result measure(const Options& options, int64_t batch) {
  Result result;
  result.batch = batch;
  allocator_for(kGpu).reset_peak();
  try {
    Trainer trainer(options, batch);
    for (int i = 0; i < options.warmup; ++i) trainer.step();
    synchronize_gpu();
    const auto start = std::chrono::steady_clock::now();
    double loss = 0.0;
    for (int i = 0; i < options.steps; ++i) loss = trainer.step();
    synchronize_gpu();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.ms_per_step = 1e3 * seconds / options.steps;
    result.tokens_per_second = static_cast<double>(batch * options.seq_len * options.steps) / seconds;
    result.peak_gib = static_cast<double>(allocator_for(kGpu).stats().peak_allocated_bytes) / (1u << 30);
    std::printf("  batch %3ld: last loss %.4f\n", static_cast<long>(batch), loss);
  } catch (const Error& e) {
    result.error = e.what();
  }
  allocator_for(kGpu).release_cached();
  return result;
}

void profile(const Options& options, int64_t batch) {
  Trainer trainer(options, batch);
  trainer.step();
  profiler::reset();
  profiler::set_scope_boundary_hook(&synchronize_gpu);
  profiler::set_enabled(true);
  synchronize_gpu();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < options.profile_steps; ++i) trainer.step();
  synchronize_gpu();
  profiler::set_enabled(false);
  profiler::set_scope_boundary_hook(nullptr);
  const double step_ms =
      1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / options.profile_steps;
  std::printf("\nper-op time at batch %ld (device synchronised at every scope; step %.1f ms in these steps):\n",
              static_cast<long>(batch), step_ms);
  std::printf("  %-34s %10s %8s %7s\n", "op", "ms/step", "calls", "share");
  for (const profiler::Entry& e : profiler::entries()) {
    const double ms = e.total_ms / options.profile_steps;
    if (ms < 0.05) continue;
    std::printf("  %-34s %10.2f %8ld %6.1f%%\n", e.name.c_str(), ms, static_cast<long>(e.calls / options.profile_steps),
                100.0 * ms / step_ms);
  }
}

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const int64_t value = std::stoll(item);
    MERIDIAN_CHECK(value > 0, "--batches: ", value, " is not a positive batch size");
    out.push_back(value);
  }
  return out;
}

int run(int argc, char** argv) {
  cxxopts::Options cli("gpu_train_bench", "GPT-2 training throughput, MFU and per-op times on one GPU");
  Options o;
  // clang-format off
  cli.add_options()
    ("model", "GPT-2 preset", cxxopts::value<std::string>()->default_value(o.model))
    ("seq-len", "sequence length", cxxopts::value<int64_t>()->default_value("1024"))
    ("batches", "micro-batch sizes to try, comma-separated", cxxopts::value<std::string>()->default_value("8,16,24,32"))
    ("dtype", "compute dtype: bf16 or f32", cxxopts::value<std::string>()->default_value("bf16"))
    ("steps", "timed steps per size", cxxopts::value<int>()->default_value("10"))
    ("warmup", "untimed steps first", cxxopts::value<int>()->default_value("3"))
    ("profile-steps", "steps of the per-op breakdown (0: none)", cxxopts::value<int>()->default_value("2"))
    ("attention", "bf16 attention kernel: flash or batched_matmul", cxxopts::value<std::string>()->default_value("flash"))
    ("flash-query-rows", "query rows per warp, flash forward and dQ: 16 or 32", cxxopts::value<int>()->default_value("16"))
    ("bias-gradient", "the products' dbias: epilogue (cuBLASLt's BGRADB) or apart (a reduction of its own)",
     cxxopts::value<std::string>()->default_value("epilogue"))
    ("help", "this text");
  // clang-format on
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) {
    std::printf("%s\n", cli.help().c_str());
    return 0;
  }
  o.model = args["model"].as<std::string>();
  o.seq_len = args["seq-len"].as<int64_t>();
  o.batches = parse_list(args["batches"].as<std::string>());
  o.dtype = parse_dtype(args["dtype"].as<std::string>());
  o.steps = std::max(1, args["steps"].as<int>());
  o.warmup = std::max(0, args["warmup"].as<int>());
  o.profile_steps = std::max(0, args["profile-steps"].as<int>());
  const std::string attention = args["attention"].as<std::string>();
  if (attention != "flash" && attention != "batched_matmul")
    MERIDIAN_FAIL("--attention: '", attention, "' is not flash or batched_matmul");
  fn::set_cuda_bf16_attention(attention == "flash" ? fn::CudaBf16Attention::flash
                                                   : fn::CudaBf16Attention::batched_matmul);
  const int flash_query_rows = args["flash-query-rows"].as<int>();
  if (flash_query_rows != 16 && flash_query_rows != 32)
    MERIDIAN_FAIL("--flash-query-rows: ", flash_query_rows, " is not 16 or 32");
  ops::cuda::set_flash_query_rows_per_warp(flash_query_rows);
  const std::string bias_gradient = args["bias-gradient"].as<std::string>();
  if (bias_gradient != "epilogue" && bias_gradient != "apart")
    MERIDIAN_FAIL("--bias-gradient: '", bias_gradient, "' is not epilogue or apart");
  ops::cuda::set_matmul_bias_gradient_epilogue(bias_gradient == "epilogue");
  if (ops::cuda::device_count() == 0) {
    std::printf("skipped: no GPU (%s)\n", ops::cuda::unavailable_reason().c_str());
    return 77;
  }
  const models::Gpt2Config config = models::Gpt2Config::preset(o.model);
  const double flops_per_token = config.flops_per_token(o.seq_len);
  const bool bf16 = o.dtype == DType::bf16;
  const std::string attention_text =
      attention == "flash" ? "flash (" + std::to_string(flash_query_rows) + " query rows/warp)" : attention;
  std::printf(
      "gpu_train_bench: %s, T=%ld, %s compute on fp32 master weights, %s attention, dbias %s, %d timed steps "
      "after %d warm-up\n",
      o.model.c_str(), static_cast<long>(o.seq_len), dtype_name(o.dtype).data(), attention_text.c_str(),
      bias_gradient == "epilogue" ? "in the BGRADB epilogue" : "apart", o.steps, o.warmup);
  std::printf("%.3g flops per token (6N + 6LCT)\n", flops_per_token);
  std::vector<Result> results;
  for (int64_t batch : o.batches) results.push_back(measure(o, batch));
  std::printf("\n%6s %10s %12s %10s %10s %10s\n", "batch", "ms/step", "tokens/s", "peak GiB", bf16 ? "MFU@989" : "MFU@67",
              bf16 ? "MFU@790" : "");
  const Result* best = nullptr;
  for (const Result& r : results) {
    if (!r.error.empty()) {
      std::printf("%6ld  does not run: %s\n", static_cast<long>(r.batch), r.error.c_str());
      continue;
    }
    const double achieved = r.tokens_per_second * flops_per_token / 1e12;
    std::printf("%6ld %10.1f %12.0f %10.1f %9.1f%%", static_cast<long>(r.batch), r.ms_per_step, r.tokens_per_second,
                r.peak_gib, 100.0 * achieved / (bf16 ? kBf16DatasheetTflops : kFp32Tflops));
    if (bf16) std::printf(" %9.1f%%", 100.0 * achieved / kBf16MeasuredTflops);
    std::printf("\n");
    if (best == nullptr || r.tokens_per_second > best->tokens_per_second) best = &r;
  }
  // The fused epilogues the training steps' products really ran, over every size above.
  std::printf("\n%s", ops::cuda::to_string(ops::cuda::matmul_epilogue_report()).c_str());
  if (best != nullptr && o.profile_steps > 0) profile(o, best->batch);
  return best != nullptr ? 0 : 1;
}

}  // namespace
}  // namespace meridian

int main(int argc, char** argv) {
  try {
    return meridian::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_train_bench: %s\n", e.what());
    return 1;
  }
}

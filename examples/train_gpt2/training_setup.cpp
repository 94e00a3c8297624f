#include "training_setup.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "core/io/default_corpus.h"
#include "core/io/tokenizer.h"
#include "core/profiler.h"
#include "launcher/log.h"
#include "models/gpt2_sample.h"
#include "ops/cpu/parallel.h"

#include "device_setup.h"

namespace meridian::train {

double group_mean(comm::Communicator& group, double value) {
  if (group.size() == 1) return value;
  Tensor t = Tensor::full({1}, value);
  group.all_reduce(t, comm::ReduceOp::avg)->wait();
  return t.item<double>();
}

bool begin_step(const TrainOptions& options, launcher::Runtime& runtime, int64_t step) {
  if (runtime.agree_to_stop()) {
    launcher::log_info("stop requested: ending after ", step, " steps");
    return false;
  }
  if (options.profile && step == 1) profiler::reset();
  profiler::set_enabled(options.profile);
  return true;
}

io::TokenDataset load_data(const TrainOptions& options) {
  if (options.data.empty()) return io::TokenDataset::from_text(io::default_corpus(), "the built-in default corpus");
  return io::TokenDataset::open(options.data);
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainOptions& options, std::vector<optim::OptimizerParam> params) {
  if (options.optimizer == "sgd")
    return std::make_unique<optim::Sgd>(std::move(params), optim::SgdOptions{options.momentum, 0.0f, options.weight_decay, false});
  return std::make_unique<optim::AdamW>(std::move(params),
                                        optim::AdamWOptions{options.beta1, options.beta2, options.eps, options.weight_decay});
}

void print_profile(int64_t steps) {
  std::printf("\nper-op time on rank 0, mean per step over %lld steps (inclusive; forward and backward apart):\n",
              static_cast<long long>(steps));
  for (const auto& entry : profiler::entries())
    std::printf("  %-28s %9.2f ms  (%lld calls)\n", entry.name.c_str(), entry.total_ms / static_cast<double>(steps),
                static_cast<long long>(entry.calls / std::max<int64_t>(steps, 1)));
}

double peak_tflops_per_rank(const TrainOptions& options, Device device) {
  if (options.peak_tflops > 0) return options.peak_tflops;
  if (device.is_cuda()) return options.dtype == DType::bf16 ? kCudaBf16PeakTflops : kCudaFp32PeakTflops;
  return 0.1 * ops::cpu::num_threads();
}

StepReporter::Rates step_rates(const TrainOptions& options, const models::Gpt2Config& config,
                               const io::DataLoader& loader, int world_size, Device device) {
  return {options.steps, loader.tokens_per_step(),
          config.flops_per_token(options.seq_len) * static_cast<double>(loader.tokens_per_step()),
          peak_tflops_per_rank(options, device) * 1e12 * world_size};
}

// Every rank of the model's tensor-parallel group samples (the forward pass is collective over it);
// `print` says which one prints.
void print_sample(const TrainOptions& options, const models::Gpt2& model, bool print) {
  const models::Gpt2Config& config = model.config();
  io::Tokenizer tokenizer = options.tokenizer.empty() ? io::Tokenizer::bytes() : io::Tokenizer::load(options.tokenizer);
  // Start from a newline for byte models, from <|endoftext|> for GPT-2's vocabulary.
  const int32_t start = config.vocab_size <= 256 ? '\n' : tokenizer.eot_token().value_or(0);
  models::SampleOptions sample_options{options.sample_tokens, options.temperature, options.seed, options.seq_len};
  const std::vector<int32_t> tokens = models::sample(model, {start}, sample_options);
  if (!print) return;
  std::printf("\n--- sample (%lld tokens, temperature %.2f) ---\n", static_cast<long long>(tokens.size()),
              options.temperature);
  const bool decodable = config.vocab_size <= 256 || !options.tokenizer.empty();
  for (int32_t token : tokens) {
    if (decodable)
      std::cout << tokenizer.decode(token);
    else
      std::cout << token << ' ';
  }
  std::cout << "\n---" << std::endl;
}

}  // namespace meridian::train

// train_gpt2: trains GPT-2 (a preset, or weights from an llm.c checkpoint) on raw text or llm.c
// token shards, printing one progress line per step. See README.md for the commands.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "core/functions/functions.h"
#include "core/io/default_corpus.h"
#include "core/io/data_loader.h"
#include "core/io/tokenizer.h"
#include "core/optim/optimizer.h"
#include "core/profiler.h"
#include "models/gpt2.h"
#include "models/gpt2_llmc.h"
#include "models/gpt2_sample.h"
#include "ops/cpu/parallel.h"
#include "step_log.h"
#include "train_options.h"

namespace meridian::train {
namespace {

using Clock = std::chrono::steady_clock;

io::TokenDataset load_data(const TrainOptions& options) {
  if (options.data.empty()) return io::TokenDataset::from_text(io::default_corpus(), "the built-in default corpus");
  return io::TokenDataset::open(options.data);
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainOptions& options, const models::Gpt2& model) {
  auto params = optim::optimizer_params(model.named_parameters());
  if (options.optimizer == "sgd")
    return std::make_unique<optim::Sgd>(std::move(params), optim::SgdOptions{options.momentum, 0.0f, options.weight_decay, false});
  return std::make_unique<optim::AdamW>(std::move(params),
                                        optim::AdamWOptions{options.beta1, options.beta2, options.eps, options.weight_decay});
}

void print_profile(int64_t steps) {
  std::printf("\nper-op time, mean per step over %lld steps (inclusive; forward and backward separately):\n",
              static_cast<long long>(steps));
  for (const auto& entry : profiler::entries())
    std::printf("  %-28s %9.2f ms  (%lld calls)\n", entry.name.c_str(), entry.total_ms / static_cast<double>(steps),
                static_cast<long long>(entry.calls / std::max<int64_t>(steps, 1)));
}

void print_sample(const TrainOptions& options, const models::Gpt2& model) {
  const models::Gpt2Config& config = model.config();
  io::Tokenizer tokenizer = options.tokenizer.empty() ? io::Tokenizer::bytes() : io::Tokenizer::load(options.tokenizer);
  // Start from a newline for byte models, from <|endoftext|> for GPT-2's vocabulary.
  const int32_t start = config.vocab_size <= 256 ? '\n' : static_cast<int32_t>(tokenizer.eot_token().value_or(0));
  models::SampleOptions sample_options{options.sample_tokens, options.temperature, options.seed, options.seq_len};
  const std::vector<int32_t> tokens = models::sample(model, {start}, sample_options);
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

int run(const TrainOptions& options) {
  ops::cpu::set_num_threads(options.threads);
  const models::Gpt2Config config = resolve_model_config(options);
  if (options.seq_len > config.max_seq_len)
    MERIDIAN_FAIL("--seq-len ", options.seq_len, " exceeds the model's max-seq-len ", config.max_seq_len);

  io::TokenDataset data = load_data(options);
  data.check_fits_vocabulary(config.vocab_size);
  io::DataLoader loader(data, {options.batch, options.seq_len, 1, 0, options.grad_accum, options.shuffle, options.seed});

  models::Gpt2 model(config);
  if (options.init_from.empty())
    model.initialize(options.seed);
  else
    models::load_llmc_weights(model, options.init_from);
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(options, model);
  StepLog log(options.log_jsonl);

  const int threads = ops::cpu::num_threads();
  const double peak_flops = (options.peak_tflops > 0 ? options.peak_tflops : 0.1 * threads) * 1e12;
  const double flops_per_step = config.flops_per_token(options.seq_len) * static_cast<double>(loader.tokens_per_step());
  std::printf("model: %s\ndata: %s, %lld tokens, %lld steps per epoch of %lld tokens\n", config.to_string().c_str(),
              data.source().c_str(), static_cast<long long>(data.size()),
              static_cast<long long>(loader.windows_per_epoch()), static_cast<long long>(loader.tokens_per_step()));
  std::printf("training: %lld steps, batch %lld x seq %lld x accum %lld, %s, %d threads\n",
              static_cast<long long>(options.steps), static_cast<long long>(options.batch),
              static_cast<long long>(options.seq_len), static_cast<long long>(options.grad_accum),
              options.optimizer.c_str(), threads);

  const std::vector<Tensor> parameters = model.parameters();
  double total_ms = 0.0;
  for (int64_t step = 0; step < options.steps; ++step) {
    if (options.profile && step == 1) profiler::reset();  // leave the first step's warm-up out
    profiler::set_enabled(options.profile);
    const auto start = Clock::now();
    optimizer->zero_grad();
    double loss_sum = 0.0;
    for (int64_t micro = 0; micro < options.grad_accum; ++micro) {
      const io::Batch batch = loader.batch(step, micro);
      Tensor loss = model.loss(batch.inputs, batch.targets, options.recompute);
      loss_sum += loss.item<double>();
      if (options.grad_accum > 1) loss = fn::scale(loss, 1.0f / static_cast<float>(options.grad_accum));
      loss.backward();
    }
    std::vector<Tensor> grads;
    for (const auto& p : parameters) grads.push_back(p.grad());
    const double norm = optim::global_grad_norm(grads);
    const float lr = options.schedule.at(step);
    optimizer->step(lr, optim::clip_coefficient(norm, options.grad_clip));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (step > 0 || options.steps == 1) total_ms += ms;

    StepMetrics metrics;
    metrics.step = step;
    metrics.total_steps = options.steps;
    metrics.loss = loss_sum / static_cast<double>(options.grad_accum);
    metrics.lr = lr;
    metrics.grad_norm = norm;
    metrics.ms = ms;
    metrics.tokens_per_s = static_cast<double>(loader.tokens_per_step()) / (ms / 1e3);
    metrics.mfu = flops_per_step / (ms / 1e3) / peak_flops;
    log.write(metrics);
  }
  profiler::set_enabled(false);
  if (options.steps > 1) {
    const double mean_ms = total_ms / static_cast<double>(options.steps - 1);
    std::printf("mean step (excluding the first): %.1f ms, %.0f tokens/s\n", mean_ms,
                static_cast<double>(loader.tokens_per_step()) / (mean_ms / 1e3));
  }
  if (options.profile) print_profile(std::max<int64_t>(options.steps - 1, 1));
  if (!options.checkpoint_out.empty()) {
    models::save_llmc_weights(model, options.checkpoint_out);
    std::printf("wrote %s\n", options.checkpoint_out.c_str());
  }
  if (options.sample_tokens > 0) print_sample(options, model);
  return 0;
}

}  // namespace
}  // namespace meridian::train

int main(int argc, char** argv) {
  try {
    const auto options = meridian::train::parse_train_options(argc, argv);
    if (!options) return 0;
    return meridian::train::run(*options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

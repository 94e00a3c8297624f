#include "trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "core/allocator.h"
#include "core/functions/functions.h"
#include "core/io/data_loader.h"
#include "core/io/default_corpus.h"
#include "core/io/tokenizer.h"
#include "core/optim/optimizer.h"
#include "core/profiler.h"
#include "launcher/log.h"
#include "launcher/usage_error.h"
#include "models/gpt2.h"
#include "models/gpt2_llmc.h"
#include "models/gpt2_sample.h"
#include "ops/cpu/parallel.h"
#include "parallel/data_parallel/data_parallel.h"
#include "step_log.h"

namespace meridian::train {
namespace {

using Clock = std::chrono::steady_clock;
using launcher::log_info;

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

// The mean of a value over the group (one-element all-reduce).
double group_mean(comm::Communicator& group, double value) {
  if (group.size() == 1) return value;
  Tensor t = Tensor::full({1}, value);
  group.all_reduce(t, comm::ReduceOp::avg)->wait();
  return t.item<double>();
}

void print_profile(int64_t steps) {
  std::printf("\nper-op time on rank 0, mean per step over %lld steps (inclusive; forward and backward apart):\n",
              static_cast<long long>(steps));
  for (const auto& entry : profiler::entries())
    std::printf("  %-28s %9.2f ms  (%lld calls)\n", entry.name.c_str(), entry.total_ms / static_cast<double>(steps),
                static_cast<long long>(entry.calls / std::max<int64_t>(steps, 1)));
}

// Peak tensor memory and the main consumers, for every rank (gathered to rank 0).
void report_memory(comm::Communicator& world, const parallel::DataParallel& dp, const optim::Optimizer& optimizer) {
  const MemoryStats stats = allocator_for(Device::cpu()).stats();
  const parallel::DataParallelMemory m = dp.memory();
  constexpr double kMiB = 1024.0 * 1024.0;
  std::vector<float> mine = {static_cast<float>(stats.peak_allocated_bytes / kMiB), static_cast<float>(m.parameter_bytes / kMiB),
                             static_cast<float>((m.gradient_bytes + m.gradient_shard_bytes) / kMiB),
                             static_cast<float>(optimizer.state_bytes() / kMiB)};
  Tensor local = Tensor::from_vector<float>(mine, {4});
  Tensor all = Tensor::empty({4 * world.size()});
  world.all_gather(local, all)->wait();
  if (world.rank() != 0) return;
  std::printf("memory per rank (MiB): peak allocated | parameters | gradients | optimizer state\n");
  const float* v = all.data<float>();
  for (int r = 0; r < world.size(); ++r)
    std::printf("  rank %d: %10.1f | %10.1f | %9.1f | %15.1f\n", r, v[4 * r], v[4 * r + 1], v[4 * r + 2], v[4 * r + 3]);
}

void print_sample(const TrainOptions& options, const models::Gpt2& model) {
  const models::Gpt2Config& config = model.config();
  io::Tokenizer tokenizer = options.tokenizer.empty() ? io::Tokenizer::bytes() : io::Tokenizer::load(options.tokenizer);
  // Start from a newline for byte models, from <|endoftext|> for GPT-2's vocabulary.
  const int32_t start = config.vocab_size <= 256 ? '\n' : tokenizer.eot_token().value_or(0);
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

}  // namespace

int train(const TrainOptions& options, const launcher::ParallelConfig& parallel, launcher::Runtime& runtime,
          parallel::ProcessGrid& grid) {
  ops::cpu::set_num_threads(options.threads);
  const bool rank0 = runtime.world_rank() == 0;
  const models::Gpt2Config config = resolve_model_config(options);
  if (options.seq_len > config.max_seq_len)
    MERIDIAN_USAGE_ERROR("--seq-len ", options.seq_len, " exceeds the model's max-seq-len ", config.max_seq_len);

  comm::Communicator& dp_group = grid.dp();
  io::TokenDataset data = load_data(options);
  data.check_fits_vocabulary(config.vocab_size);
  io::DataLoader loader(data, {options.batch, options.seq_len, dp_group.size(), dp_group.rank(), options.grad_accum,
                               options.shuffle, options.seed});

  models::Gpt2 model(config);
  if (options.init_from.empty())
    model.initialize(options.seed);  // layout-independent: every rank builds the same model
  else
    models::load_llmc_weights(model, options.init_from);
  parallel::DataParallel dp(model.named_parameters(), grid.group_ptr(parallel::Axis::dp),
                            {parallel.bucket_bytes(), parallel.zero_stage, options.dp_communicate});
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(options, dp.optimizer_params());
  StepLog log(rank0 ? options.log_jsonl : std::string());

  const int threads = ops::cpu::num_threads();
  const double peak_flops =
      (options.peak_tflops > 0 ? options.peak_tflops : 0.1 * threads) * 1e12 * runtime.world_size();
  const double flops_per_step = config.flops_per_token(options.seq_len) * static_cast<double>(loader.tokens_per_step());
  log_info("model: ", config.to_string());
  log_info("data: ", data.source(), ", ", data.size(), " tokens, ", loader.windows_per_epoch(), " steps per epoch of ",
           loader.tokens_per_step(), " tokens");
  log_info("training: ", options.steps, " steps of ", loader.tokens_per_step(), " tokens (dp ", dp_group.size(),
           " x batch ", options.batch, " x seq ", options.seq_len, " x accum ", options.grad_accum, "), ",
           options.optimizer, ", ZeRO ", parallel.zero_stage, ", ", dp.buckets().size(), " gradient buckets, ",
           threads, " threads per rank");

  double total_ms = 0.0;
  int64_t timed_steps = 0;
  for (int64_t step = 0; step < options.steps; ++step) {
    if (runtime.agree_to_stop()) {
      log_info("stop requested: ending after ", step, " steps");
      break;
    }
    if (options.profile && step == 1) profiler::reset();  // leave the first step's warm-up out
    profiler::set_enabled(options.profile);
    const auto start = Clock::now();
    {
      profiler::Scope scope("zero_grad");
      dp.zero_grad();
    }
    double loss_sum = 0.0;
    for (int64_t micro = 0; micro < options.grad_accum; ++micro) {
      const io::Batch batch = loader.batch(step, micro);
      Tensor loss;
      {
        profiler::Scope scope("model", "forward");
        loss = model.loss(batch.inputs, batch.targets, options.recompute);
      }
      loss_sum += loss.item<double>();
      if (options.grad_accum > 1) loss = fn::scale(loss, 1.0f / static_cast<float>(options.grad_accum));
      dp.begin_micro_step(micro == options.grad_accum - 1);
      {
        profiler::Scope scope("model", "backward");
        loss.backward();
      }
      dp.end_micro_step();
    }
    double norm = 0.0;
    {
      profiler::Scope scope("grad_norm");
      norm = dp.grad_norm();
    }
    const float lr = options.schedule.at(step);
    optimizer->step(lr, optim::clip_coefficient(norm, options.grad_clip));
    dp.after_optimizer_step();
    const double loss = group_mean(dp_group, loss_sum / static_cast<double>(options.grad_accum));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (step > 0 || options.steps == 1) {
      total_ms += ms;
      ++timed_steps;
    }
    if (rank0) {
      StepMetrics metrics;
      metrics.step = step;
      metrics.total_steps = options.steps;
      metrics.loss = loss;
      metrics.lr = lr;
      metrics.grad_norm = norm;
      metrics.ms = ms;
      metrics.tokens_per_s = static_cast<double>(loader.tokens_per_step()) / (ms / 1e3);
      metrics.mfu = flops_per_step / (ms / 1e3) / peak_flops;
      log.write(metrics);
    }
  }
  profiler::set_enabled(false);
  if (timed_steps > 0) {
    const double mean_ms = total_ms / static_cast<double>(timed_steps);
    log_info("mean step", options.steps > 1 ? " (excluding the first)" : "", ": ", mean_ms, " ms, ",
             static_cast<double>(loader.tokens_per_step()) / (mean_ms / 1e3), " tokens/s");
  }
  if (options.profile && rank0) print_profile(std::max<int64_t>(options.steps - 1, 1));
  report_memory(grid.world(), dp, *optimizer);
  if (rank0 && !options.checkpoint_out.empty()) {
    models::save_llmc_weights(model, options.checkpoint_out);
    log_info("wrote ", options.checkpoint_out);
  }
  if (rank0 && options.sample_tokens > 0) print_sample(options, model);
  return 0;
}

}  // namespace meridian::train

#include "trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "core/allocator.h"
#include "core/functions/functions.h"
#include "core/functions/working_copies.h"
#include "core/io/data_loader.h"
#include "core/io/default_corpus.h"
#include "core/io/tokenizer.h"
#include "core/optim/optimizer.h"
#include "core/profiler.h"
#include "launcher/log.h"
#include "models/gpt2.h"
#include "models/gpt2_llmc.h"
#include "models/gpt2_sample.h"
#include "ops/cpu/parallel.h"
#include "parallel/data_parallel/data_parallel.h"
#include "step_log.h"
#include "tensor_parallel_setup.h"
#include "training_setup.h"

namespace meridian::train {
namespace {

using Clock = std::chrono::steady_clock;
using launcher::log_info;

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

}  // namespace

int train(const TrainOptions& options, const launcher::ParallelConfig& parallel, launcher::Runtime& runtime,
          parallel::ProcessGrid& grid) {
  ops::cpu::set_num_threads(options.threads);
  const bool rank0 = runtime.world_rank() == 0;
  const models::Gpt2Config config = resolve_model_config(options);
  check_tensor_parallel_layout(config, options, grid.shape().tp);

  comm::Communicator& dp_group = grid.dp();
  io::TokenDataset data = load_data(options);
  data.check_fits_vocabulary(config.vocab_size);
  io::DataLoader loader(data, {options.batch, options.seq_len, dp_group.size(), dp_group.rank(), options.grad_accum,
                               options.shuffle, options.seed});

  models::Gpt2 model(config, {}, tensor_parallel_context(grid, options));
  if (options.init_from.empty())
    model.initialize(options.seed);  // layout-independent: every rank builds the same model
  else
    models::load_llmc_weights(model, options.init_from);
  model.set_compute_dtype(options.dtype);
  parallel::DataParallelOptions dp_options;
  dp_options.bucket_bytes = parallel.bucket_bytes();
  dp_options.zero_stage = parallel.zero_stage;
  dp_options.communicate = options.dp_communicate;
  dp_options.tensor_parallel_group = grid.group_ptr(parallel::Axis::tp);
  dp_options.sequence_parallel = options.sequence_parallel;
  parallel::DataParallel dp(model.named_parameters(), grid.group_ptr(parallel::Axis::dp), dp_options);
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(options, dp.optimizer_params());
  const int threads = ops::cpu::num_threads();
  StepReporter report(rank0, options.log_jsonl, step_rates(options, config, loader, runtime.world_size()));
  log_info("model: ", model.config().to_string(), ", compute ", dtype_name(options.dtype),
           options.dtype == DType::f32 ? "" : " (fp32 master weights, gradients and optimizer state)");
  if (grid.shape().tp > 1)
    log_info("tensor parallel: tp ", grid.shape().tp, options.sequence_parallel ? " with sequence parallelism" : "",
             ", padded vocabulary ", model.config().padded_vocab_size);
  log_info("parameters per rank: ", model.num_parameters(), " of ", model.config().num_parameters());
  log_info("data: ", data.source(), ", ", data.size(), " tokens, ", loader.windows_per_epoch(), " steps per epoch of ",
           loader.tokens_per_step(), " tokens");
  log_info("training: ", options.steps, " steps of ", loader.tokens_per_step(), " tokens (dp ", dp_group.size(),
           " x batch ", options.batch, " x seq ", options.seq_len, " x accum ", options.grad_accum, "), ",
           options.optimizer, ", ZeRO ", parallel.zero_stage, ", ", dp.buckets().size(), " gradient buckets, ",
           threads, " threads per rank");

  for (int64_t step = 0; step < options.steps; ++step) {
    if (!begin_step(options, runtime, step)) break;
    const auto start = Clock::now();
    {
      profiler::Scope scope("zero_grad");
      dp.zero_grad();
    }
    double loss_sum = 0.0;
    {
      // Under --dtype bf16 each master weight is converted once per step, not once per micro-batch
      // (closed before the optimizer changes the weights).
      const fn::WorkingCopies working_copies;
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
    report.record(step, loss, lr, norm, ms);
  }
  profiler::set_enabled(false);
  report.print_mean();
  if (options.profile && rank0) print_profile(std::max<int64_t>(options.steps - 1, 1));
  report_memory(grid.world(), dp, *optimizer);
  // One data-parallel replica saves and samples; with tp > 1 its whole tp group takes part.
  const bool first_replica = grid.coordinate(parallel::Axis::dp) == 0;
  if (first_replica && !options.checkpoint_out.empty()) {
    models::save_llmc_weights(model, options.checkpoint_out);
    log_info("wrote ", options.checkpoint_out);
  }
  if (first_replica && options.sample_tokens > 0) print_sample(options, model, rank0);
  return 0;
}

}  // namespace meridian::train

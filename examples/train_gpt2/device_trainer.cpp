#include "device_trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/functions/functions.h"
#include "core/functions/working_copies.h"
#include "core/io/data_loader.h"
#include "core/optim/optimizer.h"
#include "core/profiler.h"
#include "launcher/log.h"
#include "launcher/usage_error.h"
#include "models/gpt2.h"
#include "models/gpt2_llmc.h"
#include "ops/cpu/parallel.h"
#include "parallel/data_parallel/data_parallel.h"

#include "device_setup.h"
#include "step_log.h"
#include "tensor_parallel_setup.h"
#include "training_setup.h"

namespace meridian::train {
namespace {

using Clock = std::chrono::steady_clock;
using launcher::log_info;

}  // namespace

int train_on_device(const TrainOptions& options, const launcher::ParallelConfig& parallel, launcher::Runtime& runtime,
                    parallel::ProcessGrid& grid, Device device) {
  ops::cpu::set_num_threads(options.threads);  // host work: data loading, checks, initialisation
  const models::Gpt2Config config = resolve_model_config(options);
  const int tp = grid.shape().tp;
  check_tensor_parallel_layout(config, options, tp);
  check_device_options(options, device);
  io::TokenDataset data = load_data(options);
  data.check_fits_vocabulary(config.vocab_size);
  comm::Communicator& dp_group = grid.dp();
  io::DataLoader loader(data, {options.batch, options.seq_len, dp_group.size(), dp_group.rank(), options.grad_accum,
                               options.shuffle, options.seed});

  // Built and initialised (or loaded) on the host, then moved: the initial weights are the cpu
  // engine's, bit for bit.
  // Tensor parallelism: the maps and the vocabulary-parallel loss run over NCCL on the tp group.
  const comm::TensorGroupFactory tensor_groups = tensor_groups_on(runtime, device);
  const parallel::TensorParallelContext tensor_parallel = tensor_parallel_context(grid, options, tensor_groups);
  models::Gpt2 model(config, {}, tensor_parallel);
  if (options.init_from.empty())
    model.initialize(options.seed);
  else
    models::load_llmc_weights(model, options.init_from);
  model.to(device);
  model.set_compute_dtype(options.dtype);
  parallel::DataParallelOptions dp_options;
  dp_options.bucket_bytes = parallel.bucket_bytes();
  dp_options.zero_stage = parallel.zero_stage;
  dp_options.communicate = options.dp_communicate && dp_group.size() > 1;
  dp_options.tensor_parallel_group = tensor_parallel.group;
  dp_options.sequence_parallel = options.sequence_parallel;
  parallel::DataParallel dp(model.named_parameters(),
                            comm::tensor_group(tensor_groups, grid.group_ptr(parallel::Axis::dp)),
                            dp_options);
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(options, dp.optimizer_params());

  const double peak_tflops = peak_tflops_per_rank(options, device);
  StepReporter report(runtime.world_rank() == 0, options.log_jsonl,
                      step_rates(options, config, loader, runtime.world_size(), device));
  log_info("model: ", model.config().to_string());
  log_info("parameters: ", model.num_parameters(), " on ", device.to_string(), " (fp32), compute ",
           dtype_name(options.dtype), ", MFU against ", peak_tflops, " TFLOP/s");
  log_info("data: ", data.source(), ", ", data.size(), " tokens, ", loader.windows_per_epoch(), " steps per epoch of ",
           loader.tokens_per_step(), " tokens");
  log_info("training: ", options.steps, " steps of ", loader.tokens_per_step(), " tokens (dp ", dp_group.size(),
           " x batch ", options.batch, " x seq ", options.seq_len, " x accum ", options.grad_accum, ") on ",
           device.to_string(), ", ", options.optimizer, ", ZeRO ", parallel.zero_stage,
           dp_group.size() > 1 ? ", gradients reduced over NCCL" : "",
           tp > 1 ? ", tensor parallel over NCCL on " : "", tp > 1 ? std::to_string(tp) + " GPUs" : "",
           tp > 1 && options.sequence_parallel ? " with sequence parallelism" : "");

  for (int64_t step = 0; step < options.steps; ++step) {
    // On the GPU the profiler's scopes time the host's work (mostly kernel launches) except where
    // the host waits for the device (the loss and the norm read back).
    if (!begin_step(options, runtime, step)) break;
    const auto start = Clock::now();
    dp.zero_grad();  // the gradient buckets, on the device
    double loss_sum = 0.0;
    {
      // Under --dtype bf16 each master weight is converted once per step, not once per micro-batch
      // (closed before the optimizer changes the weights).
      const fn::WorkingCopies working_copies;
      for (int64_t micro = 0; micro < options.grad_accum; ++micro) {
        const io::Batch batch = loader.batch(step, micro);
        const Tensor inputs = batch.inputs.to(device);
        const Tensor targets = batch.targets.to(device);
        Tensor loss;
        {
          profiler::Scope scope("model", "forward");
          loss = model.loss(inputs, targets, options.recompute);
        }
        loss_sum += loss.item<double>();
        if (options.grad_accum > 1) loss = fn::scale(loss, 1.0f / static_cast<float>(options.grad_accum));
        dp.begin_micro_step(micro == options.grad_accum - 1);
        {
          profiler::Scope scope("model", "backward");
          loss.backward();  // full buckets start their reductions from the gradient hooks
        }
        dp.end_micro_step();  // the compute stream waits for the reductions; the host does not
      }
    }
    double norm = 0.0;
    {
      profiler::Scope scope("grad_norm");
      norm = dp.grad_norm();  // reads the norm back: waits for backward and the reductions
    }
    const float lr = options.schedule.at(step);
    optimizer->step(lr, optim::clip_coefficient(norm, options.grad_clip));
    dp.after_optimizer_step();  // ZeRO: all-gathers the updated parameter shards
    const double loss = group_mean(dp_group, loss_sum / static_cast<double>(options.grad_accum));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    report.record(step, loss, lr, norm, ms);
  }
  profiler::set_enabled(false);
  report.print_mean();
  if (options.profile) print_profile(std::max<int64_t>(options.steps - 1, 1));
  const MemoryStats stats = allocator_for(device).stats();
  std::printf("memory on %s (MiB): peak allocated %.1f, reserved %.1f; optimizer state %.1f\n",
              device.to_string().c_str(), static_cast<double>(stats.peak_allocated_bytes) / (1024.0 * 1024.0),
              static_cast<double>(stats.reserved_bytes) / (1024.0 * 1024.0),
              static_cast<double>(optimizer->state_bytes()) / (1024.0 * 1024.0));

  // One data-parallel replica saves and samples, from the GPUs: the weights are gathered to the host
  // (over the tp group's NCCL communicator when tp > 1, whose every rank takes part) and the
  // sampler runs the model where it is.
  if (dp_group.rank() != 0) return 0;
  if (!options.checkpoint_out.empty()) {
    models::save_llmc_weights(model, options.checkpoint_out);
    log_info("wrote ", options.checkpoint_out);
  }
  if (options.sample_tokens > 0) print_sample(options, model, runtime.world_rank() == 0);
  return 0;
}

}  // namespace meridian::train

#include "device_trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "core/allocator.h"
#include "core/functions/functions.h"
#include "core/io/data_loader.h"
#include "core/optim/optimizer.h"
#include "core/profiler.h"
#include "launcher/log.h"
#include "launcher/usage_error.h"
#include "models/gpt2.h"
#include "models/gpt2_llmc.h"
#include "ops/cpu/parallel.h"
#include "step_log.h"
#include "training_setup.h"

namespace meridian::train {
namespace {

using Clock = std::chrono::steady_clock;
using launcher::log_info;

// fp32 peak of one H100/H200 SXM without tensor cores (NVIDIA's datasheet: 67 TFLOP/s): the MFU
// denominator for fp32 training unless --peak-tflops says otherwise.
constexpr double kCudaFp32PeakTflops = 67.0;
// Dense bf16 tensor-core peak of one H100/H200 SXM (NVIDIA's datasheet: 989 TFLOP/s), for --dtype bf16.
// A large bf16 matmul measured about 790 TFLOP/s on the lent H200s (bench/gpu_train_bench.sh reports
// MFU against both).
constexpr double kCudaBf16PeakTflops = 989.0;

}  // namespace

int train_on_device(const TrainOptions& options, launcher::Runtime& runtime, Device device) {
  ops::cpu::set_num_threads(options.threads);  // host work: data loading, checks, initialisation
  const models::Gpt2Config config = resolve_model_config(options);
  if (options.optimizer != "adamw")
    MERIDIAN_USAGE_ERROR("--optimizer ", options.optimizer, " with --device ", device.to_string(),
                         ": only adamw has a CUDA kernel");
  io::TokenDataset data = load_data(options);
  data.check_fits_vocabulary(config.vocab_size);
  io::DataLoader loader(data, {options.batch, options.seq_len, 1, 0, options.grad_accum, options.shuffle, options.seed});

  // Built and initialised (or loaded) on the host, then moved: the initial weights are the cpu
  // engine's, bit for bit.
  models::Gpt2 model(config);
  if (options.init_from.empty())
    model.initialize(options.seed);
  else
    models::load_llmc_weights(model, options.init_from);
  model.to(device);
  model.set_compute_dtype(options.dtype);
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(options, optim::optimizer_params(model.named_parameters()));

  const double default_peak = options.dtype == DType::bf16 ? kCudaBf16PeakTflops : kCudaFp32PeakTflops;
  const double peak_tflops = options.peak_tflops > 0 ? options.peak_tflops : default_peak;
  StepReporter report(runtime.world_rank() == 0, options.log_jsonl,
                      {options.steps, loader.tokens_per_step(),
                       config.flops_per_token(options.seq_len) * static_cast<double>(loader.tokens_per_step()),
                       peak_tflops * 1e12});
  log_info("model: ", model.config().to_string());
  log_info("parameters: ", model.num_parameters(), " on ", device.to_string(), " (fp32), compute ",
           dtype_name(options.dtype), ", MFU against ", peak_tflops, " TFLOP/s");
  log_info("data: ", data.source(), ", ", data.size(), " tokens, ", loader.windows_per_epoch(), " steps per epoch of ",
           loader.tokens_per_step(), " tokens");
  log_info("training: ", options.steps, " steps of ", loader.tokens_per_step(), " tokens (batch ", options.batch,
           " x seq ", options.seq_len, " x accum ", options.grad_accum, ") on ", device.to_string(), ", ",
           options.optimizer);

  for (int64_t step = 0; step < options.steps; ++step) {
    if (runtime.agree_to_stop()) {
      log_info("stop requested: ending after ", step, " steps");
      break;
    }
    // On the GPU the profiler's scopes time the host's work (mostly kernel launches) except where
    // the host waits for the device (the loss and the norm read back).
    if (options.profile && step == 1) profiler::reset();
    profiler::set_enabled(options.profile);
    const auto start = Clock::now();
    optimizer->zero_grad();  // every parameter's .grad exists after the first backward; zeroed on the device
    double loss_sum = 0.0;
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
      {
        profiler::Scope scope("model", "backward");
        loss.backward();
      }
    }
    std::vector<Tensor> grads;
    for (const auto& p : optimizer->params()) grads.push_back(p.param.grad());
    double norm = 0.0;
    {
      profiler::Scope scope("grad_norm");
      norm = optim::global_grad_norm(grads);  // waits for backward
    }
    const float lr = options.schedule.at(step);
    optimizer->step(lr, optim::clip_coefficient(norm, options.grad_clip));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    report.record(step, loss_sum / static_cast<double>(options.grad_accum), lr, norm, ms);
  }
  profiler::set_enabled(false);
  report.print_mean();
  if (options.profile) print_profile(std::max<int64_t>(options.steps - 1, 1));
  const MemoryStats stats = allocator_for(device).stats();
  std::printf("memory on %s (MiB): peak allocated %.1f, reserved %.1f; optimizer state %.1f\n",
              device.to_string().c_str(), static_cast<double>(stats.peak_allocated_bytes) / (1024.0 * 1024.0),
              static_cast<double>(stats.reserved_bytes) / (1024.0 * 1024.0),
              static_cast<double>(optimizer->state_bytes()) / (1024.0 * 1024.0));

  // Saving and sampling run on the host: the weights come back (the step timings are done).
  if (!options.checkpoint_out.empty() || options.sample_tokens > 0) model.to(Device::cpu());
  if (!options.checkpoint_out.empty()) {
    models::save_llmc_weights(model, options.checkpoint_out);
    log_info("wrote ", options.checkpoint_out);
  }
  if (options.sample_tokens > 0) print_sample(options, model, true);
  return 0;
}

}  // namespace meridian::train

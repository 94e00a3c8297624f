#include "pipeline_trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/allocator.h"
#include "core/io/data_loader.h"
#include "core/profiler.h"
#include "launcher/log.h"
#include "models/gpt2_llmc.h"
#include "models/gpt2_pipeline.h"
#include "models/gpt2_pipeline_gather.h"
#include "ops/cpu/parallel.h"
#include "parallel/pipeline/chrome_trace.h"
#include "parallel/pipeline/pipeline_parallel.h"
#include "parallel/pipeline/schedule_simulation.h"
#include "device_setup.h"
#include "step_log.h"
#include "tensor_parallel_setup.h"
#include "training_setup.h"

namespace meridian::train {
namespace {

using Clock = std::chrono::steady_clock;
using launcher::log_info;

// The bubble a schedule leaves with equal-cost stages (backward = 2 forwards, B = W), to print next
// to the measured one.
double theoretical_bubble(parallel::ScheduleKind kind, const parallel::ScheduleShape& shape) {
  const double v = shape.virtual_stages;
  return parallel::simulate_schedule(kind, shape, {1.0 / v, 2.0 / v, 1.0 / v, 1.0 / v}).bubble_fraction.front();
}

// Every rank's bubble, live micro-batches and memory, gathered to rank 0 and printed there. On GPUs
// the bubble is the compute stream's (the timeline marks the stream, not the host's launches).
void report_pipeline(comm::Communicator& world, const parallel::ProcessGrid& grid, parallel::PipelineParallel& pipeline,
                     const optim::Optimizer& optimizer, int64_t steps, double theory, Device device) {
  // Leave the first step (allocation, warm-up) out of the mean when there are others.
  const double bubble = pipeline.timeline().mean_bubble_fraction(steps > 1 ? 1 : 0);
  const MemoryStats stats = allocator_for(device).stats();
  const parallel::DataParallelMemory m = pipeline.memory();
  constexpr double kMiB = 1024.0 * 1024.0;
  constexpr int kFields = 7;
  const std::vector<float> mine = {static_cast<float>(bubble),
                                   static_cast<float>(pipeline.last_step().peak_live_micro_batches),
                                   static_cast<float>(grid.coordinate(parallel::Axis::pp)),
                                   static_cast<float>(stats.peak_allocated_bytes / kMiB),
                                   static_cast<float>(m.parameter_bytes / kMiB),
                                   static_cast<float>((m.gradient_bytes + m.gradient_shard_bytes) / kMiB),
                                   static_cast<float>(optimizer.state_bytes() / kMiB)};
  Tensor local = Tensor::from_vector<float>(mine, {kFields});
  Tensor all = Tensor::empty({kFields * world.size()});
  world.all_gather(local, all)->wait();
  if (world.rank() != 0) return;
  const float* v = all.data<float>();
  double mean = 0.0;
  std::printf("pipeline per rank: stage | bubble | peak live micro-batches | memory on %s (MiB): peak allocated | "
              "parameters | gradients | optimizer state\n",
              device.to_string().c_str());
  for (int r = 0; r < world.size(); ++r) {
    const float* f = v + kFields * r;
    mean += f[0] / world.size();
    std::printf("  rank %d: pp %d | %5.1f%% | %d | %10.1f | %10.1f | %9.1f | %15.1f\n", r, static_cast<int>(f[2]),
                100.0 * f[0], static_cast<int>(f[1]), f[3], f[4], f[5], f[6]);
  }
  std::printf("pipeline bubble: %.1f%% measured (mean over ranks and steps%s%s), %.1f%% in theory for equal-cost "
              "stages\n",
              100.0 * mean, steps > 1 ? " after the first" : "", device.is_cuda() ? ", on the compute streams" : "",
              100.0 * theory);
}

}  // namespace

int train_pipelined(const TrainOptions& options, const PipelineFlags& flags, const launcher::ParallelConfig& parallel,
                    launcher::Runtime& runtime, parallel::ProcessGrid& grid, Device device) {
  ops::cpu::set_num_threads(options.threads);
  const bool rank0 = runtime.world_rank() == 0;
  const models::Gpt2Config config = resolve_model_config(options);
  check_tensor_parallel_layout(config, options, grid.shape().tp);
  if (device.is_cuda()) check_device_options(options, device);
  const std::vector<parallel::StageBlocks> partition =
      check_pipeline_layout(flags, parallel, config.num_layers, options.batch, options.grad_accum);
  const int pp = grid.shape().pp, pp_rank = grid.coordinate(parallel::Axis::pp), V = flags.virtual_stages;
  const int micro_batches = static_cast<int>(options.grad_accum) * flags.micro_batches;

  comm::Communicator& dp_group = grid.dp();
  io::TokenDataset data = load_data(options);
  data.check_fits_vocabulary(config.vocab_size);
  io::DataLoader loader(data, {options.batch, options.seq_len, dp_group.size(), dp_group.rank(), options.grad_accum,
                               options.shuffle, options.seed});

  // On GPUs the tensors move over NCCL: the tp group here, the stage links, dp and tied groups in
  // PipelineParallel.
  const comm::TensorGroupFactory tensor_groups = tensor_groups_on(runtime, device);
  const parallel::TensorParallelContext tensor_parallel = tensor_parallel_context(grid, options, tensor_groups);
  std::vector<std::unique_ptr<models::Gpt2PipelineChunk>> chunks;
  std::vector<parallel::PipelineChunk> pieces;
  for (int v = 0; v < V; ++v) {
    const int stage = v * pp + pp_rank;
    auto model = std::make_unique<models::Gpt2>(config, models::pipeline_placement(partition, stage), tensor_parallel);
    if (options.init_from.empty())
      model->initialize(options.seed);  // layout-independent: each stage gets the values one process would
    else
      models::load_llmc_weights(*model, options.init_from);
    model->to(device);  // built and initialised on the host: the cpu run's initial weights, bit for bit
    model->set_compute_dtype(options.dtype);
    chunks.push_back(std::make_unique<models::Gpt2PipelineChunk>(std::move(model), options.recompute));
    pieces.push_back({chunks.back().get(), chunks.back()->model().named_parameters()});
  }
  parallel::PipelineParallelOptions pipeline_options;
  pipeline_options.schedule = flags.schedule;
  pipeline_options.virtual_stages = V;
  pipeline_options.micro_batches = micro_batches;
  // Under sequence parallelism a stage holds (and sends) its tp rank's share of the positions.
  const int64_t positions = options.seq_len / (tensor_parallel.sequence_parallel_enabled() ? tensor_parallel.size() : 1);
  pipeline_options.activation_shape = {options.batch / flags.micro_batches, positions, config.channels};
  pipeline_options.activation_dtype = options.dtype;
  pipeline_options.tied_parameter = models::kGpt2TiedParameter;
  pipeline_options.data_parallel = {parallel.bucket_bytes(), parallel.zero_stage, options.dp_communicate};
  pipeline_options.data_parallel.tensor_parallel_group = tensor_parallel.group;
  // Under sequence parallelism each tp rank's LayerNorm and bias gradients cover only its positions.
  pipeline_options.data_parallel.sequence_parallel = options.sequence_parallel;
  pipeline_options.keep_trace_events = !flags.trace.empty();
  pipeline_options.device = device;
  pipeline_options.tensor_groups = tensor_groups;
  parallel::PipelineParallel pipeline(grid, std::move(pieces), std::move(pipeline_options));
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(options, pipeline.optimizer_params());
  const int threads = ops::cpu::num_threads();
  StepReporter report(rank0, options.log_jsonl, step_rates(options, config, loader, runtime.world_size(), device));
  const parallel::ScheduleShape shape{pp, V, micro_batches};
  log_info("model: ", config.to_string(), ", compute ", dtype_name(options.dtype));
  log_info("data: ", data.source(), ", ", data.size(), " tokens, ", loader.windows_per_epoch(), " steps per epoch of ",
           loader.tokens_per_step(), " tokens");
  std::string split;
  for (const auto& stage : partition) split += (split.empty() ? "" : ",") + std::to_string(stage.num_blocks);
  log_info("pipeline: pp ", pp, " x virtual stages ", V, " (blocks per stage ", split, "), schedule ",
           parallel::schedule_name(flags.schedule), ", ", micro_batches, " micro-batches of ",
           options.batch / flags.micro_batches, " sequences per step; dp ", dp_group.size(), ", ZeRO ",
           parallel.zero_stage, device.is_cuda() ? ", on " + device.to_string() + " (transfers and reductions over NCCL)"
                                                 : ", " + std::to_string(threads) + " threads per rank");

  for (int64_t step = 0; step < options.steps; ++step) {
    if (!begin_step(options, runtime, step)) break;
    const auto start = Clock::now();
    std::vector<models::Gpt2MicroBatch> batches;
    for (int64_t i = 0; i < options.grad_accum; ++i) {
      const io::Batch batch = loader.batch(step, i);
      batches.push_back({batch.inputs.to(device), batch.targets.to(device)});
    }
    const auto micro = models::split_micro_batches(batches, flags.micro_batches);
    for (auto& chunk : chunks) chunk->set_micro_batches(micro);
    const double loss = pipeline.forward_backward();
    const double norm = pipeline.grad_norm();
    const float lr = options.schedule.at(step);
    const int64_t optimizer_start = pipeline.timeline().now();
    {
      profiler::Scope scope("optimizer");
      optimizer->step(lr, optim::clip_coefficient(norm, options.grad_clip));
      pipeline.after_optimizer_step();
    }
    pipeline.timeline().record("optimizer", parallel::TimelineCategory::optimizer, parallel::TimelineTrack::compute,
                               optimizer_start, pipeline.timeline().now(), {{"step", step}});
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    report.record(step, loss, lr, norm, ms);
  }
  profiler::set_enabled(false);
  if (options.profile && rank0) print_profile(std::max<int64_t>(options.steps - 1, 1));
  report.print_mean();
  report_pipeline(grid.world(), grid, pipeline, *optimizer, options.steps, theoretical_bubble(flags.schedule, shape),
                  device);
  if (!flags.trace.empty()) {
    const int rank = runtime.world_rank();
    const auto& c = grid.coordinates();
    pipeline.timeline().flush();  // the last optimizer step's times (on a GPU, known once it has run)
    parallel::write_chrome_trace(pipeline.timeline(), trace_path_for_rank(flags.trace, rank), rank,
                                 "rank " + std::to_string(rank) + " (pp " + std::to_string(c.pp) + ", dp " +
                                     std::to_string(c.dp) + ", tp " + std::to_string(c.tp) + ")");
    log_info("wrote the timeline of every rank to ", trace_path_for_rank(flags.trace, 0), " ... ",
             trace_path_for_rank(flags.trace, runtime.world_size() - 1));
  }
  if (!options.checkpoint_out.empty() || options.sample_tokens > 0) {
    // The stages' pieces assembled into the whole model on rank 0, which writes and samples.
    std::vector<const models::Gpt2*> stage_models;
    for (const auto& chunk : chunks) stage_models.push_back(&chunk->model());  // values come to the host
    const std::unique_ptr<models::Gpt2> whole = models::gather_pipelined_model(stage_models, grid);
    if (whole && !options.checkpoint_out.empty()) {
      models::save_llmc_weights(*whole, options.checkpoint_out);
      log_info("wrote ", options.checkpoint_out);
    }
    if (whole && options.sample_tokens > 0) print_sample(options, *whole, true);
  }
  return 0;
}

}  // namespace meridian::train

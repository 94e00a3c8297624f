#include "parallel/pipeline/pipeline_parallel.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/functions/working_copies.h"
#include "core/profiler.h"
#include "ops/cpu/optimizer.h"

namespace meridian::parallel {

namespace {

const nn::NamedParameter* find_parameter(const PipelineChunk& chunk, const std::string& name) {
  for (const auto& p : chunk.parameters)
    if (p.name == name) return &p;
  return nullptr;
}

double sum_of_squares(const Tensor& t) {
  if (t.device().is_cuda()) {
    const double norm = optim::global_grad_norm({t});  // Σ g² in double on the device
    return norm * norm;
  }
  return ops::cpu::sum_of_squares(t.data<float>(), t.numel());
}

}  // namespace

PipelineParallel::PipelineParallel(const ProcessGrid& grid, std::vector<PipelineChunk> chunks,
                                   PipelineParallelOptions options)
    : grid_(grid),
      options_(std::move(options)),
      chunks_(std::move(chunks)),
      timeline_(options_.keep_trace_events, device_timeline_clock(options_.device)) {
  const int pp = grid.shape().pp, pp_rank = grid.coordinate(Axis::pp), V = options_.virtual_stages;
  const ScheduleShape shape{pp, V, options_.micro_batches};
  if (pp < 2) MERIDIAN_FAIL("pipeline parallelism needs pp >= 2 (one stage has nothing to pipeline), got ", pp);
  check_schedule_shape(options_.schedule, shape);
  if (static_cast<int>(chunks_.size()) != V)
    MERIDIAN_FAIL("pipeline: ", chunks_.size(), " model chunks for ", V, " virtual stages");

  const std::string& tied = options_.tied_parameter;
  if (!tied.empty()) {
    const int last_chunk = V - 1;
    if (pp_rank == 0) tied_first_chunk_ = 0;
    if (pp_rank == pp - 1) tied_last_chunk_ = last_chunk;
    for (int v = 0; v < V; ++v) {
      const bool holds = find_parameter(chunks_[static_cast<size_t>(v)], tied) != nullptr;
      const bool should = v == tied_first_chunk_ || v == tied_last_chunk_;
      if (holds != should)
        MERIDIAN_FAIL("pipeline: the tied weight '", tied, "' must be held by the first and the last stage only; stage ",
                      v * pp + pp_rank, holds ? " holds it" : " lacks it");
    }
    if (tied_first_chunk_ >= 0 || tied_last_chunk_ >= 0) {
      const int held = tied_first_chunk_ >= 0 ? tied_first_chunk_ : tied_last_chunk_;
      const nn::NamedParameter* copy = find_parameter(chunks_[static_cast<size_t>(held)], tied);
      tied_is_tensor_parallel_shard_ = copy != nullptr && copy->shard.has_value();
    }
    // Every world rank takes part in the split; only the two holders of a copy get a group.
    const bool member = pp_rank == 0 || pp_rank == pp - 1;
    const int dp_tp = grid.shape().dp * grid.shape().tp;
    tied_group_ = comm::tensor_group(
        options_.tensor_groups, grid.world().split(member ? grid.world().rank() % dp_tp : -1, pp_rank, "pp-tied"));
  }
  dp_group_ = comm::tensor_group(options_.tensor_groups, grid.group_ptr(Axis::dp));

  const bool split = splits_backward(options_.schedule);
  std::vector<DataParallel*> raw;
  for (int v = 0; v < V; ++v) {
    const PipelineChunk& chunk = chunks_[static_cast<size_t>(v)];
    MERIDIAN_CHECK(chunk.stage != nullptr, "pipeline: chunk ", v, " has no stage");
    DataParallelOptions dp_options = options_.data_parallel;
    if (v == tied_first_chunk_ || v == tied_last_chunk_) dp_options.own_bucket.push_back(tied);
    dp_options.launch_from_hooks = !split;
    // A one-rank dp group stays an MPI group on GPUs (nothing to communicate, and MPI takes host tensors).
    if (options_.device.is_cuda() && dp_group_->size() == 1) dp_options.communicate = false;
    data_parallel_.push_back(
        std::make_unique<DataParallel>(chunk.parameters, dp_group_, std::move(dp_options)));
    raw.push_back(data_parallel_.back().get());
    const auto& params = data_parallel_.back()->optimizer_params();
    optimizer_params_.insert(optimizer_params_.end(), params.begin(), params.end());
  }

  std::vector<PipelineStage*> stages;
  for (const auto& chunk : chunks_) stages.push_back(chunk.stage);
  engine_ = std::make_unique<PipelineEngine>(
      grid.pp(), std::move(stages),
      PipelineEngineOptions{options_.schedule, shape, options_.activation_shape, options_.activation_dtype,
                            options_.device, options_.tensor_groups},
      timeline_, std::move(raw));
}

double PipelineParallel::forward_backward() {
  {
    profiler::Scope scope("zero_grad");
    for (auto& dp : data_parallel_) dp->zero_grad();
  }
  {
    // Every micro-batch in flight shares one working copy of each master weight (bf16 compute),
    // instead of holding its own.
    const fn::WorkingCopies working_copies;
    last_step_ = engine_->run_step();
  }
  sum_tied_gradients();
  // The loss lives on the last stage: its dp mean there, then a sum over the pp group (the other
  // stages add zero) gives it to every rank.
  const bool last_stage = grid_.coordinate(Axis::pp) == grid_.shape().pp - 1;
  Tensor loss = Tensor::full({1}, last_stage ? last_step_.loss_sum / options_.micro_batches : 0.0);
  if (grid_.dp().size() > 1) grid_.dp().all_reduce(loss, comm::ReduceOp::avg)->wait();
  if (grid_.pp().size() > 1) grid_.pp().all_reduce(loss, comm::ReduceOp::sum)->wait();
  return loss.item<float>();
}

void PipelineParallel::sum_tied_gradients() {
  if (tied_first_chunk_ < 0 && tied_last_chunk_ < 0) return;
  profiler::Scope scope("pipeline.tied_gradients");
  const std::string& tied = options_.tied_parameter;
  const int chunk = tied_first_chunk_ >= 0 ? tied_first_chunk_ : tied_last_chunk_;
  Tensor owned = data_parallel_[static_cast<size_t>(chunk)]->owned_gradient(tied);
  const int64_t start = timeline_.now();
  tied_group_->all_reduce(owned, comm::ReduceOp::sum)->wait();
  timeline_.record("tied " + tied, TimelineCategory::data_parallel, TimelineTrack::communication, start,
                   timeline_.now());
}

double PipelineParallel::grad_norm() {
  profiler::Scope scope("grad_norm");
  double squares = 0.0;
  for (auto& dp : data_parallel_) {
    const double norm = dp->grad_norm();
    squares += norm * norm;
  }
  // The last stage's copy of the tied weight equals the first stage's (summed above): leave it out.
  if (tied_last_chunk_ >= 0) {
    Tensor owned = data_parallel_[static_cast<size_t>(tied_last_chunk_)]->owned_gradient(options_.tied_parameter);
    Tensor duplicate = Tensor::full({1}, sum_of_squares(owned));
    if (options_.data_parallel.zero_stage > 0 && grid_.dp().size() > 1)
      grid_.dp().all_reduce(duplicate, comm::ReduceOp::sum)->wait();
    if (tied_is_tensor_parallel_shard_ && grid_.tp().size() > 1)
      grid_.tp().all_reduce(duplicate, comm::ReduceOp::sum)->wait();
    squares -= duplicate.item<float>();
  }
  Tensor total = Tensor::full({1}, squares);
  if (grid_.pp().size() > 1) grid_.pp().all_reduce(total, comm::ReduceOp::sum)->wait();
  return std::sqrt(std::max(0.0, static_cast<double>(total.item<float>())));
}

void PipelineParallel::after_optimizer_step() {
  for (auto& dp : data_parallel_) dp->after_optimizer_step();
}

DataParallelMemory PipelineParallel::memory() const {
  DataParallelMemory total;
  for (const auto& dp : data_parallel_) {
    const DataParallelMemory m = dp->memory();
    total.parameter_bytes += m.parameter_bytes;
    total.gradient_bytes += m.gradient_bytes;
    total.gradient_shard_bytes += m.gradient_shard_bytes;
  }
  return total;
}

}  // namespace meridian::parallel

#include "parallel/pipeline/pipeline_engine.h"

#include <algorithm>

#include "core/autograd/engine.h"
#include "core/error.h"
#include "core/profiler.h"

namespace meridian::parallel {

namespace {

// How many upcoming actions have their receives posted before the current one computes: enough
// that the next input is already arriving while this pass runs (and the one after in 1F1B, where
// forward and backward inputs alternate), few enough that receive buffers stay O(1) per rank.
constexpr size_t kReceiveLookahead = 2;

nlohmann::json action_args(const PipelineAction& action, int stage) {
  return {{"micro_batch", action.micro_batch}, {"chunk", action.chunk}, {"stage", stage}};
}

}  // namespace

PipelineEngine::PipelineEngine(comm::Communicator& pp_group, std::vector<PipelineStage*> chunks,
                               PipelineEngineOptions options, Timeline& timeline,
                               std::vector<DataParallel*> data_parallel)
    : group_(pp_group),
      chunks_(std::move(chunks)),
      options_(std::move(options)),
      timeline_(timeline),
      data_parallel_(std::move(data_parallel)),
      rank_(pp_group.rank()),
      actions_(build_schedule(options_.schedule, options_.shape, pp_group.rank())),
      transfers_(pp_group,
                 StageTransferOptions{options_.schedule, options_.shape, options_.activation_shape,
                                      options_.activation_dtype, options_.device, options_.tensor_groups},
                 timeline) {
  const int V = options_.shape.virtual_stages;
  if (static_cast<int>(chunks_.size()) != V)
    MERIDIAN_FAIL("pipeline: ", chunks_.size(), " model chunks on this rank, but the schedule has ", V,
                  " virtual stages");
  for (PipelineStage* chunk : chunks_) MERIDIAN_CHECK(chunk != nullptr, "pipeline: a model chunk is null");
  if (!data_parallel_.empty() && static_cast<int>(data_parallel_.size()) != V)
    MERIDIAN_FAIL("pipeline: ", data_parallel_.size(), " data-parallel groups for ", V, " chunks");
  const bool split = splits_backward(options_.schedule);
  const PassKind completes = split ? PassKind::backward_weight : PassKind::backward;
  last_gradient_action_.assign(static_cast<size_t>(V), 0);
  for (size_t i = 0; i < actions_.size(); ++i)
    if (actions_[i].pass == completes) last_gradient_action_[static_cast<size_t>(actions_[i].chunk)] = i;
}

bool PipelineEngine::is_first_stage(int chunk) const { return chunk == 0 && rank_ == 0; }

bool PipelineEngine::is_last_stage(int chunk) const {
  return chunk == options_.shape.virtual_stages - 1 && rank_ == options_.shape.pipeline_size - 1;
}

PipelineStepStats PipelineEngine::run_step() {
  PipelineStepStats stats;
  live_ = peak_live_ = 0;
  group_.barrier()->wait();
  timeline_.begin_window();
  for (size_t i = 0; i < actions_.size(); ++i) {
    for (size_t ahead = i; ahead < std::min(actions_.size(), i + 1 + kReceiveLookahead); ++ahead)
      transfers_.post_receive(actions_[ahead]);
    const PipelineAction& action = actions_[i];
    switch (action.pass) {
      case PassKind::forward: run_forward(action); break;
      case PassKind::backward:
      case PassKind::backward_input: run_backward(action, i); break;
      case PassKind::backward_weight: run_weight_gradients(action, i); break;
    }
    transfers_.release_completed_sends();
  }
  transfers_.wait_for_sends();
  MERIDIAN_CHECK(in_flight_.empty(), "pipeline: the schedule left micro-batches behind");
  transfers_.end_step();
  // Read once the whole step is issued: on a GPU a read waits for the device, and waiting earlier
  // would hold back this rank's later sends and receives.
  for (const Tensor& loss : losses_) stats.loss_sum += loss.item<double>();
  losses_.clear();
  group_.barrier()->wait();
  timeline_.end_window();
  stats.peak_live_micro_batches = peak_live_;
  stats.bubble_fraction = timeline_.windows().back().bubble_fraction();
  return stats;
}

void PipelineEngine::run_forward(const PipelineAction& action) {
  const int stage = action.chunk * options_.shape.pipeline_size + rank_;
  InFlight entry;
  if (!is_first_stage(action.chunk)) {
    entry.input = transfers_.take_input(action);
    entry.input.set_requires_grad(true);
  }
  const int64_t start = timeline_.now();
  {
    profiler::Scope scope("pipeline.forward");
    entry.output = chunks_[static_cast<size_t>(action.chunk)]->forward(action.micro_batch, entry.input);
  }
  timeline_.record(to_string(action), TimelineCategory::forward, TimelineTrack::compute, start, timeline_.now(),
                   action_args(action, stage));
  if (!entry.output.requires_grad())
    MERIDIAN_FAIL("pipeline: stage ", stage, " returned an output without a gradient path for ", to_string(action));
  if (is_last_stage(action.chunk)) {
    if (entry.output.numel() != 1)
      MERIDIAN_FAIL("pipeline: the last stage must return a one-element loss, got shape ",
                    shape_str(entry.output.shape()));
    losses_.push_back(entry.output.detach());
  } else {
    transfers_.send_output(action, entry.output.detach());
  }
  in_flight_.emplace(std::make_pair(action.chunk, action.micro_batch), std::move(entry));
  peak_live_ = std::max(peak_live_, ++live_);
}

void PipelineEngine::run_backward(const PipelineAction& action, size_t index) {
  const int stage = action.chunk * options_.shape.pipeline_size + rank_;
  auto it = in_flight_.find({action.chunk, action.micro_batch});
  MERIDIAN_CHECK(it != in_flight_.end(), "pipeline: ", to_string(action), " before its forward");
  InFlight& entry = it->second;
  const Tensor gradient =
      is_last_stage(action.chunk)
          ? Tensor::full(entry.output.shape(), 1.0 / static_cast<double>(options_.shape.micro_batches))
                .to(entry.output.device())
          : transfers_.take_input(action);
  const bool split = action.pass == PassKind::backward_input;
  DataParallel* dp = data_parallel_.empty() ? nullptr : data_parallel_[static_cast<size_t>(action.chunk)];
  const int64_t start = timeline_.now();
  {
    profiler::Scope scope("pipeline.backward");
    if (split) {
      autograd::DeferWeightGrads defer(entry.weight_grads);
      autograd::run_backward(entry.output, gradient);
    } else {
      if (dp) dp->begin_micro_step(index == last_gradient_action_[static_cast<size_t>(action.chunk)]);
      autograd::run_backward(entry.output, gradient);
    }
  }
  timeline_.record(to_string(action), TimelineCategory::backward, TimelineTrack::compute, start, timeline_.now(),
                   action_args(action, stage));
  if (!split && dp) {
    const int64_t wait_start = timeline_.now();
    dp->end_micro_step();
    timeline_.record("dp reduce " + to_string(action), TimelineCategory::data_parallel,
                     TimelineTrack::communication, wait_start, timeline_.now(), action_args(action, stage));
  }
  if (!is_first_stage(action.chunk)) {
    if (!entry.input.grad().defined())
      MERIDIAN_FAIL("pipeline: stage ", stage, "'s output does not depend on its input (", to_string(action), ")");
    transfers_.send_output(action, entry.input.grad());
  }
  entry.output = Tensor();  // the graph is freed; a split backward keeps only what W needs
  entry.input = Tensor();
  if (!split) release(action);
}

void PipelineEngine::run_weight_gradients(const PipelineAction& action, size_t index) {
  const int stage = action.chunk * options_.shape.pipeline_size + rank_;
  auto it = in_flight_.find({action.chunk, action.micro_batch});
  MERIDIAN_CHECK(it != in_flight_.end(), "pipeline: ", to_string(action), " before its backward");
  const int64_t start = timeline_.now();
  {
    profiler::Scope scope("pipeline.weight_gradients");
    it->second.weight_grads.run();
  }
  timeline_.record(to_string(action), TimelineCategory::weight_gradient, TimelineTrack::compute, start,
                   timeline_.now(), action_args(action, stage));
  release(action);
  DataParallel* dp = data_parallel_.empty() ? nullptr : data_parallel_[static_cast<size_t>(action.chunk)];
  if (dp && index == last_gradient_action_[static_cast<size_t>(action.chunk)]) {
    const int64_t wait_start = timeline_.now();
    dp->reduce_gradients();
    timeline_.record("dp reduce chunk " + std::to_string(action.chunk), TimelineCategory::data_parallel,
                     TimelineTrack::communication, wait_start, timeline_.now(), action_args(action, stage));
  }
}

void PipelineEngine::release(const PipelineAction& action) {
  in_flight_.erase({action.chunk, action.micro_batch});
  --live_;
}

}  // namespace meridian::parallel

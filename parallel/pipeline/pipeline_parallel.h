#pragma once
// Pipeline parallelism over the grid's pp axis, composed with data parallelism over its dp axis:
// the training step of a rank that holds V model chunks (global stages v·pp + pp rank).
//
//   PipelineParallel pipeline(grid, {{&chunk0, chunk0_parameters}, ...}, options);
//   optimizer built on pipeline.optimizer_params()
//   every step:
//     loss = pipeline.forward_backward();      // zero_grad, schedule, reductions, tied-weight sum
//     scale = clip_coefficient(pipeline.grad_norm(), clip);
//     optimizer.step(lr, scale);  pipeline.after_optimizer_step();
//
// Data parallelism: one DataParallel per chunk over the dp group. Its buckets are reduced from the
// grad-ready hooks during the chunk's last backward (earlier micro-batches only accumulate), or,
// for a split backward (zb-h1), explicitly after the chunk's last W pass.
//
// Tied weight (GPT-2's token embedding = output head): the first stage and the last stage each hold
// a copy under the same name with the same initial values. After the step's reductions the two
// copies' gradients are summed over a group of two ranks — the first- and last-stage ranks with the
// same dp and tp coordinates — so both apply the same update and stay equal. The weight has a
// bucket of its own (DataParallelOptions::own_bucket), so under ZeRO both ranks own the same part
// of it and the sum runs on the reduced shard (Megatron does the same). The gradient norm counts
// it once.
#include <memory>
#include <string>
#include <vector>

#include "core/nn/module.h"
#include "core/optim/optimizer.h"
#include "parallel/comm/tensor_groups.h"
#include "parallel/data_parallel/data_parallel.h"
#include "parallel/pipeline/pipeline_engine.h"
#include "parallel/pipeline/pipeline_stage.h"
#include "parallel/pipeline/schedule.h"
#include "parallel/pipeline/timeline.h"
#include "parallel/process_grid.h"

namespace meridian::parallel {

struct PipelineParallelOptions {
  ScheduleKind schedule = ScheduleKind::one_f_one_b;
  int virtual_stages = 1;
  int micro_batches = 1;
  Shape activation_shape;      // what crosses every stage boundary
  DType activation_dtype = DType::f32;  // and its dtype (bf16 under mixed precision)
  std::string tied_parameter;  // held by the first and the last stage; empty: none
  // For every chunk's DataParallel (own_bucket and launch_from_hooks are set by the pipeline).
  DataParallelOptions data_parallel;
  bool keep_trace_events = false;  // store every timeline event, for write_chrome_trace
  // Where the chunks' parameters and activations live, and the backend that moves them: empty for
  // host tensors over the grid's MPI groups; on GPUs a factory of NCCL communicators, applied to
  // the stage links, the dp group and the tied-weight group (the loss and the norm, host numbers,
  // stay on the MPI groups).
  Device device = Device::cpu();
  comm::TensorGroupFactory tensor_groups;
};

struct PipelineChunk {
  PipelineStage* stage = nullptr;
  std::vector<nn::NamedParameter> parameters;
};

class PipelineParallel {
 public:
  // Collective over the grid's world (it splits off the tied-weight group). `chunks[v]` is global
  // stage v·pp + this rank's pp coordinate. Needs pp ≥ 2.
  PipelineParallel(const ProcessGrid& grid, std::vector<PipelineChunk> chunks, PipelineParallelOptions options);
  PipelineParallel(const PipelineParallel&) = delete;
  PipelineParallel& operator=(const PipelineParallel&) = delete;

  const std::vector<optim::OptimizerParam>& optimizer_params() const { return optimizer_params_; }
  // Zeroes the gradients and runs the step's schedule; afterwards every rank holds its part of the
  // step's averaged gradients, the tied weight's summed. Returns the step's loss — the mean over
  // the micro-batches and the data-parallel ranks — on every rank.
  double forward_backward();
  // The global gradient norm: every stage, every dp shard, the tied weight once.
  double grad_norm();
  void after_optimizer_step();

  const PipelineStepStats& last_step() const { return last_step_; }
  Timeline& timeline() { return timeline_; }
  const PipelineEngine& engine() const { return *engine_; }
  const std::vector<std::unique_ptr<DataParallel>>& data_parallel() const { return data_parallel_; }
  DataParallelMemory memory() const;  // summed over the chunks

 private:
  void sum_tied_gradients();

  const ProcessGrid& grid_;
  PipelineParallelOptions options_;
  std::vector<PipelineChunk> chunks_;
  std::vector<std::unique_ptr<DataParallel>> data_parallel_;
  std::vector<optim::OptimizerParam> optimizer_params_;
  Timeline timeline_;
  std::unique_ptr<PipelineEngine> engine_;
  PipelineStepStats last_step_;
  // Tied weight: the chunk holding the first stage's copy (-1: none here), the chunk holding the
  // last stage's copy (-1: none here; with pp ≥ 2 never the same rank), and the group of the two.
  int tied_first_chunk_ = -1;
  int tied_last_chunk_ = -1;
  bool tied_is_tensor_parallel_shard_ = false;
  std::shared_ptr<comm::Communicator> tied_group_;
  std::shared_ptr<comm::Communicator> dp_group_;  // the gradients' dp group (NCCL on GPUs)
};

}  // namespace meridian::parallel

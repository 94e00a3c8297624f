#pragma once
// Runs one training step's pipeline schedule on this rank: the forward and backward passes of every
// micro-batch on the rank's model chunks, in the schedule's order, with activations and gradients
// exchanged with the neighbouring stages (stage_transfers.h).
//
//   forward F(c, m)   input = received activation (a fresh leaf that requires grad) or nothing on
//                     the first stage; output = chunk c's forward; sent on, or on the last stage
//                     the micro-batch loss
//   backward B(c, m)  autograd::run_backward(output, gradient) where the gradient is the received
//                     one, or 1/M for the loss (so gradients are the mean over the step's M
//                     micro-batches, as one process computes over the whole batch); the input
//                     leaf's gradient is sent back
//   split backward    the same under autograd::DeferWeightGrads (B), the queued weight gradients
//                     of that micro-batch later (W)
//
// Activation counter: a micro-batch's activations are alive from its forward until its backward
// (until its W with a split backward); the engine counts them per rank and reports the peak.
#include <map>
#include <utility>
#include <vector>

#include "core/autograd/weight_grad_store.h"
#include "core/tensor.h"
#include "parallel/comm/communicator.h"
#include "parallel/comm/tensor_groups.h"
#include "parallel/data_parallel/data_parallel.h"
#include "parallel/pipeline/pipeline_stage.h"
#include "parallel/pipeline/schedule.h"
#include "parallel/pipeline/stage_transfers.h"
#include "parallel/pipeline/timeline.h"

namespace meridian::parallel {

struct PipelineEngineOptions {
  ScheduleKind schedule = ScheduleKind::one_f_one_b;
  ScheduleShape shape;
  Shape activation_shape;  // what crosses every stage boundary: (B/M, T, C) for GPT-2
  DType activation_dtype = DType::f32;  // the compute dtype: activations and their gradients share it
  Device device = Device::cpu();        // where the chunks run
  comm::TensorGroupFactory tensor_groups;  // the stage links' backend (empty: MPI, host tensors)
};

struct PipelineStepStats {
  double loss_sum = 0.0;            // Σ of the micro-batch losses on the last stage's rank; 0 elsewhere
  int peak_live_micro_batches = 0;  // most (chunk, micro-batch) activations alive at once on this rank
  double bubble_fraction = 0.0;     // of this rank's schedule window (timeline.h)
};

class PipelineEngine {
 public:
  // `chunks[v]` is global stage v·pp + pp rank. `data_parallel[v]`, when given, reduces chunk v's
  // gradients: from its hooks during the chunk's last backward (the others only accumulate), or,
  // for a split backward, by reduce_gradients() after the chunk's last W pass (its
  // launch_from_hooks must then be false).
  PipelineEngine(comm::Communicator& pp_group, std::vector<PipelineStage*> chunks, PipelineEngineOptions options,
                 Timeline& timeline, std::vector<DataParallel*> data_parallel = {});

  // One step's schedule; collective over the pp group (it begins and ends with a barrier there, so
  // that the bubble is measured over the same window on every rank). Gradients accumulate into .grad.
  // On a GPU the host only issues the work (nothing in the schedule waits for the device) and reads
  // the losses back at the end.
  PipelineStepStats run_step();

  const std::vector<PipelineAction>& actions() const { return actions_; }
  const PipelineEngineOptions& options() const { return options_; }

 private:
  struct InFlight {
    Tensor input;   // the received activation (a leaf); undefined on the first stage
    Tensor output;  // the chunk's output, root of its backward
    autograd::WeightGradStore weight_grads;  // split backward: this micro-batch's W work
  };

  bool is_first_stage(int chunk) const;
  bool is_last_stage(int chunk) const;
  void run_forward(const PipelineAction& action);
  void run_backward(const PipelineAction& action, size_t index);
  void run_weight_gradients(const PipelineAction& action, size_t index);
  void release(const PipelineAction& action);

  comm::Communicator& group_;
  std::vector<PipelineStage*> chunks_;
  PipelineEngineOptions options_;
  Timeline& timeline_;
  std::vector<DataParallel*> data_parallel_;
  int rank_;
  std::vector<PipelineAction> actions_;
  // Index in actions_ of each chunk's last backward (last W for a split backward): where its
  // gradients are complete and its reduction starts.
  std::vector<size_t> last_gradient_action_;
  StageTransfers transfers_;
  std::map<std::pair<int, int>, InFlight> in_flight_;  // (chunk, micro-batch)
  std::vector<Tensor> losses_;  // the last stage's micro-batch losses of this step, read at its end
  int live_ = 0;
  int peak_live_ = 0;
};

}  // namespace meridian::parallel

#pragma once
// Data parallelism over one group of ranks (the grid's dp axis), DDP-style, with ZeRO stages:
//
//  stage 0  gradients all-reduced (averaged) bucket by bucket while backward still runs: a bucket
//           is launched from the grad-ready hook of its last parameter, in bucket order on every
//           rank; every rank then updates every parameter.
//  stage 1  the same buckets are reduce-scattered instead: rank r receives the averaged chunk r of
//           each bucket and updates only that chunk (optimizer state for 1/D of the parameters);
//           the updated parameters are all-gathered after the step.
//  stage 2  as 1, and full gradients are not kept: a bucket's gradient buffer exists only from its
//           first gradient until its reduce-scatter completes, and the rank's chunk is accumulated
//           into a persistent shard. Like DeepSpeed, this reduces at every micro-step.
//
// Gradient accumulation: with stages 0 and 1, micro-steps that do not end the step only accumulate
// into the buckets; the last one reduces. A training step is:
//
//   dp.zero_grad();
//   for (micro = 0; micro < K; ++micro) { dp.begin_micro_step(micro == K - 1); loss.backward(); dp.end_micro_step(); }
//   scale = clip_coefficient(dp.grad_norm(), clip);  optimizer.step(lr, scale);  dp.after_optimizer_step();
//
// where the optimizer was built on dp.optimizer_params().
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/nn/module.h"
#include "core/optim/optimizer.h"
#include "parallel/comm/communicator.h"
#include "parallel/data_parallel/gradient_buckets.h"

namespace meridian::parallel {

struct DataParallelOptions {
  size_t bucket_bytes = 25u << 20;
  int zero_stage = 0;
  // Off only to measure compute alone (the overlap benchmark): no collective is issued and the
  // ranks' gradients are NOT averaged.
  bool communicate = true;
  // Parameters that get a bucket of their own. Pipeline parallelism puts the tied embedding there:
  // its bucket, and so the part of it each rank owns under ZeRO, is then laid out alike on the
  // first and the last stage, which sum that part after the reduction (Megatron does the same).
  std::vector<std::string> own_bucket = {};
  // Reduce buckets from grad-ready hooks while backward runs. Off: nothing is reduced until
  // reduce_gradients(). Needed with deferred weight gradients (core/autograd/weight_grad_store.h),
  // under which a hook fires before the W pass has added the weight's gradient.
  bool launch_from_hooks = true;
  // Tensor parallelism on the same grid: the grid's tp group (null or a group of one: none).
  // Parameters with a ShardSpec are this tp rank's piece of a logical tensor, the others are
  // replicated over tp, so grad_norm() counts the pieces of every tp rank and replicated parameters
  // once.
  std::shared_ptr<comm::Communicator> tensor_parallel_group = nullptr;
  // Sequence parallelism: every replicated parameter (LayerNorms, row-parallel biases, position
  // embedding) then sees only this rank's sequence positions, so its gradient is a partial sum. It
  // is summed over the tp group when its bucket is reduced (Megatron's all-reduce of
  // sequence-parallel gradients), before the data-parallel reduction.
  bool sequence_parallel = false;
};

struct DataParallelMemory {
  size_t parameter_bytes = 0;       // full parameters (every rank holds them)
  size_t gradient_bytes = 0;        // persistent gradient buffers on this rank
  size_t gradient_shard_bytes = 0;  // ZeRO-2 accumulated shard
};

class DataParallel {
 public:
  DataParallel(const std::vector<nn::NamedParameter>& parameters, std::shared_ptr<comm::Communicator> group,
               DataParallelOptions options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // What this rank's optimizer updates: every parameter (stage 0) or the segments of its shard.
  const std::vector<optim::OptimizerParam>& optimizer_params() const;
  void zero_grad();
  // Before each micro-step's backward; `last` marks the micro-step whose gradients complete the step.
  void begin_micro_step(bool last);
  // After each micro-step's backward: for a reducing micro-step, waits until every bucket is reduced.
  void end_micro_step();
  // Global gradient norm of the averaged gradients (a collective over the group for stages 1 and 2,
  // and over the tensor-parallel group when there is one): the norm of the logical model's gradient.
  double grad_norm();
  // All-gathers the parameters each rank updated (stages 1 and 2); nothing for stage 0.
  void after_optimizer_step();
  // Reduces every bucket now, in order, and waits: for launch_from_hooks = false, once the step's
  // gradients are complete (after the last weight-gradient pass).
  void reduce_gradients();
  // This rank's part of the reduced gradient of an own_bucket parameter: all of it (stage 0) or
  // the rank's chunk of its bucket (stages 1 and 2; zeros past the parameter's end).
  Tensor owned_gradient(const std::string& name);

  int zero_stage() const;
  const std::vector<Bucket>& buckets() const;
  // Buckets whose reduction has been started in the current micro-step (shows the overlap: during
  // backward, early buckets are already on the wire while later gradients are still computed).
  int buckets_launched() const;
  DataParallelMemory memory() const;

  struct State;

 private:
  double tensor_parallel_grad_norm();

  std::shared_ptr<State> state_;
};

}  // namespace meridian::parallel

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
  // Global gradient norm of the averaged gradients (a collective over the group for stages 1 and 2).
  double grad_norm();
  // All-gathers the parameters each rank updated (stages 1 and 2); nothing for stage 0.
  void after_optimizer_step();

  int zero_stage() const;
  const std::vector<Bucket>& buckets() const;
  // Buckets whose reduction has been started in the current micro-step (shows the overlap: during
  // backward, early buckets are already on the wire while later gradients are still computed).
  int buckets_launched() const;
  DataParallelMemory memory() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace meridian::parallel

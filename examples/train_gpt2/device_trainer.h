#pragma once
// The training loop of train_gpt2 --device cuda: each rank on the GPU the launcher bound
// (cuda:local_rank), f32 or bf16 compute on fp32 master weights. With more than one rank, data
// parallelism (ZeRO 0/1/2) whose bucket reductions run over NCCL on the communicator's own stream,
// ordered by events against the compute stream so they overlap backward, and tensor parallelism
// whose maps run over NCCL. With --pp > 1, train_pipelined runs instead (pipeline_trainer.h).
#include "core/device.h"
#include "launcher/parallel_options.h"
#include "launcher/runtime.h"
#include "parallel/process_grid.h"
#include "train_options.h"

namespace meridian::train {

int train_on_device(const TrainOptions& options, const launcher::ParallelConfig& parallel, launcher::Runtime& runtime,
                    parallel::ProcessGrid& grid, Device device);

}  // namespace meridian::train

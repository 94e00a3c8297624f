#pragma once
// The training loop of train_gpt2 with --pp > 1: each rank holds its pipeline stages' GPT-2 chunks,
// runs the step's schedule over the micro-batches (parallel/pipeline), and rank 0 prints the loss of
// the last stage, the measured bubble fraction and, with --trace, each rank writes its timeline.
// On `device` cuda every rank runs its chunks on its GPU; the stage transfers, the data-parallel
// reductions, the tied-weight sum and the tensor-parallel maps run over NCCL.
#include "core/device.h"
#include "launcher/parallel_options.h"
#include "launcher/runtime.h"
#include "parallel/process_grid.h"
#include "pipeline_options.h"
#include "train_options.h"

namespace meridian::train {

int train_pipelined(const TrainOptions& options, const PipelineFlags& flags, const launcher::ParallelConfig& parallel,
                    launcher::Runtime& runtime, parallel::ProcessGrid& grid, Device device);

}  // namespace meridian::train

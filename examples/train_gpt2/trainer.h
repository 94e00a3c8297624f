#pragma once
// The training loop of train_gpt2: data-parallel over the grid's dp group (DDP or ZeRO), one
// progress line per step on rank 0.
#include "launcher/parallel_options.h"
#include "launcher/runtime.h"
#include "parallel/process_grid.h"
#include "train_options.h"

namespace meridian::train {

int train(const TrainOptions& options, const launcher::ParallelConfig& parallel, launcher::Runtime& runtime,
          parallel::ProcessGrid& grid);

}  // namespace meridian::train

#pragma once
// train_gpt2's tensor parallelism: the startup checks of the layout against the model and the
// context the model is built with.
#include "models/gpt2.h"
#include "parallel/comm/tensor_groups.h"
#include "parallel/process_grid.h"
#include "parallel/tensor_parallel/tensor_parallel_context.h"
#include "train_options.h"

namespace meridian::train {

// Throws launcher::UsageError naming the flags and numbers when the model cannot be split over
// `tp` ranks (channels or heads not divisible, a sequence length sequence parallelism cannot split,
// sampling under sequence parallelism). It depends only on the flags, so every rank throws it.
void check_tensor_parallel_layout(const models::Gpt2Config& config, const TrainOptions& options, int tp);

// The grid's tp group (through `tensor_groups`: NCCL on GPUs) and --sequence-parallel.
parallel::TensorParallelContext tensor_parallel_context(const parallel::ProcessGrid& grid, const TrainOptions& options,
                                                        const comm::TensorGroupFactory& tensor_groups = {});

}  // namespace meridian::train

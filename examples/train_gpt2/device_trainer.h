#pragma once
// The training loop of train_gpt2 --device cuda: one process, fp32, on the GPU the launcher bound
// (cuda:local_rank). No data parallelism: the multi-rank loop (trainer.h) reduces gradients on the
// host over MPI, and NCCL training is not wired yet, so main() refuses --device cuda with more than
// one rank.
#include "core/device.h"
#include "launcher/runtime.h"
#include "train_options.h"

namespace meridian::train {

int train_on_device(const TrainOptions& options, launcher::Runtime& runtime, Device device);

}  // namespace meridian::train

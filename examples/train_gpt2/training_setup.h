#pragma once
// Pieces of a training run that every trainer loop (data/tensor parallel, pipelined) sets up alike.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/io/token_dataset.h"
#include "core/io/data_loader.h"
#include "core/optim/optimizer.h"
#include "launcher/runtime.h"
#include "models/gpt2.h"
#include "parallel/comm/communicator.h"
#include "step_log.h"
#include "train_options.h"

namespace meridian::train {

// The mean of a host value over `group` (a one-element all-reduce over a host communicator).
double group_mean(comm::Communicator& group, double value);

// The start of every trainer's step: false (logged) when the ranks agreed to stop before `step`;
// otherwise turns --profile's table on, reset at step 1 so the first step's warm-up is left out.
bool begin_step(const TrainOptions& options, launcher::Runtime& runtime, int64_t step);

// --data, or the built-in default corpus.
io::TokenDataset load_data(const TrainOptions& options);
// --optimizer adamw|sgd with its flags, over `params`.
std::unique_ptr<optim::Optimizer> make_optimizer(const TrainOptions& options, std::vector<optim::OptimizerParam> params);
// --profile: the per-op time table of this rank, mean per step over `steps` steps.
void print_profile(int64_t steps);

// --sample: generates from `model` and prints on `print`. Every rank of the model's tensor-parallel
// group must call it (the forward pass is collective over the group).
void print_sample(const TrainOptions& options, const models::Gpt2& model, bool print);

// The peak one rank's MFU is measured against: --peak-tflops; else on the cpu 0.1 TFLOP/s per
// thread, on a GPU the bf16 or fp32 datasheet peak (device_setup.h).
double peak_tflops_per_rank(const TrainOptions& options, Device device);
// What a step is worth: its tokens and flops (6N + 6·L·C·T per token) and the job's peak (the
// rank's, times the world size) for the MFU column.
StepReporter::Rates step_rates(const TrainOptions& options, const models::Gpt2Config& config,
                               const io::DataLoader& loader, int world_size, Device device = Device::cpu());

}  // namespace meridian::train

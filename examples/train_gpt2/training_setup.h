#pragma once
// Pieces of a training run that every trainer loop (data/tensor parallel, pipelined) sets up alike.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/io/token_dataset.h"
#include "core/optim/optimizer.h"
#include "models/gpt2.h"
#include "train_options.h"

namespace meridian::train {

// --data, or the built-in default corpus.
io::TokenDataset load_data(const TrainOptions& options);
// --optimizer adamw|sgd with its flags, over `params`.
std::unique_ptr<optim::Optimizer> make_optimizer(const TrainOptions& options, std::vector<optim::OptimizerParam> params);
// --profile: the per-op time table of this rank, mean per step over `steps` steps.
void print_profile(int64_t steps);

// --sample: generates from `model` and prints on `print`. Every rank of the model's tensor-parallel
// group must call it (the forward pass is collective over the group).
void print_sample(const TrainOptions& options, const models::Gpt2& model, bool print);

}  // namespace meridian::train

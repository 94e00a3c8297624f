#pragma once
// Activation recompute (checkpointing): run a block without keeping its activations, and run it again
// during backward to get them back. Trades one extra forward of the block for its activation memory.
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace meridian::autograd {

using Block = std::function<Tensor(const Tensor& input)>;

// Returns block(input) with a graph of one node. `parameters` must list every leaf the block reads
// (its weights): the outer graph counts them, so their grad-ready hooks fire only once the recompute
// has added their gradients. The block must be deterministic (it runs twice).
Tensor checkpoint(const Block& block, const Tensor& input, const std::vector<Tensor>& parameters);

}  // namespace meridian::autograd

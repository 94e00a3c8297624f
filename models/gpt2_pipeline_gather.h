#pragma once
// The whole GPT-2 of a pipelined (and possibly tensor-parallel) run, assembled on world rank 0, for
// writing an llm.c checkpoint and sampling there. Every stage's parameters are gathered into their
// logical tensors over the stage's tp group, and the stage's (dp 0, tp 0) rank sends them to world
// rank 0, name first, so the receiver needs no knowledge of the sender's parameter order.
#include <memory>
#include <vector>

#include "models/gpt2.h"
#include "parallel/process_grid.h"

namespace meridian::models {

// `chunks` are this rank's model chunks, chunk v being global stage v·pp + the rank's pp coordinate.
// Collective over the ranks of data-parallel replica 0 (the others return at once: their replica
// holds the same values). Returns the whole model, without tensor parallelism, on world rank 0 and
// null elsewhere. Fails naming the parameter when a stage's tensors do not fit the whole model.
std::unique_ptr<Gpt2> gather_pipelined_model(const std::vector<const Gpt2*>& chunks, const parallel::ProcessGrid& grid);

}  // namespace meridian::models

#pragma once
#include <vector>

#include "core/tensor.h"

namespace meridian::autograd {

struct BackwardOptions {
  bool retain_graph = false;  // keep saved tensors so backward can run again
  bool fire_hooks = true;     // run grad-ready hooks (off for the nested pass of a recompute)
};

// Walks the graph from `root` in reverse topological order (later-created nodes first), seeding
// it with `gradient` (ones for a one-element root when undefined), and accumulates into .grad.
void run_backward(const Tensor& root, const Tensor& gradient, BackwardOptions options = {});

}  // namespace meridian::autograd

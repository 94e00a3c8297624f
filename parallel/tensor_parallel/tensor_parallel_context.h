#pragma once
// What a tensor-parallel layer needs to know: the group its ranks form (the grid's tp axis) and
// whether the regions between its layers are sequence-parallel.
#include <memory>

#include "parallel/comm/communicator.h"

namespace meridian::parallel {

struct TensorParallelContext {
  std::shared_ptr<comm::Communicator> group;  // null or a group of one: no tensor parallelism
  // Megatron's sequence parallelism: LayerNorms, residual adds and the embedding output are split
  // along the sequence axis between the tensor-parallel regions (activations / tp there), with an
  // all-gather before and a reduce-scatter after each region instead of all-reduces.
  bool sequence_parallel = false;

  int size() const { return group ? group->size() : 1; }
  int rank() const { return group ? group->rank() : 0; }
  bool enabled() const { return size() > 1; }
  bool sequence_parallel_enabled() const { return enabled() && sequence_parallel; }
};

}  // namespace meridian::parallel

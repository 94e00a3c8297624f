#pragma once
// Which communicator carries a run's tensors. The process grid's groups are MPI groups (host
// tensors); a run on GPUs moves its tensors over NCCL communicators of the same ranks instead,
// bootstrapped over those MPI groups. Code that builds groups for tensors (the pipeline's stage
// links, data-parallel and tied-weight groups) takes a TensorGroupFactory and applies it to the MPI
// group it split off, so it needs no knowledge of the backend.
#include <functional>
#include <memory>

#include "parallel/comm/communicator.h"

namespace meridian::comm {

// Given an MPI group, the group (of the same ranks, in the same order) that moves the run's tensors.
// Collective over `host_group` when it creates a communicator.
using TensorGroupFactory = std::function<std::shared_ptr<Communicator>(std::shared_ptr<Communicator> host_group)>;

// Host tensors: the MPI group itself. An empty factory means the same.
inline std::shared_ptr<Communicator> tensor_group(const TensorGroupFactory& factory,
                                                  std::shared_ptr<Communicator> host_group) {
  if (!factory || host_group == nullptr) return host_group;
  return factory(std::move(host_group));
}

}  // namespace meridian::comm

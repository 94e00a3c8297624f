#pragma once
// Reassembling logical tensors from their tensor-parallel pieces (for checkpoints written with
// tp > 1, which store logical tensors only).
#include "core/nn/module.h"
#include "parallel/comm/communicator.h"

namespace meridian::parallel {

// The whole logical tensor of `parameter`, on every rank of `group`. Collective over the group when
// the parameter is a piece (every rank calls it for the same parameters in the same order): the
// ranks' pieces and their offsets are all-gathered and each is placed by its ShardSpec. An unsharded
// parameter is returned as a copy without communicating. The result is on the host; pieces on a GPU
// are gathered there when `group` is an NCCL group (a model trained on GPUs), else on the host.
Tensor gather_logical_tensor(const nn::NamedParameter& parameter, comm::Communicator& group);

}  // namespace meridian::parallel

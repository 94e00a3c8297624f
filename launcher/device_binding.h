#pragma once
// Which device a rank computes on. With --device cuda, rank r drives the GPU whose index is its
// node-local rank (from MPI_COMM_TYPE_SHARED, not world_rank % gpus: nodes may hold different
// numbers of ranks), and that GPU becomes the process's current CUDA device.
#include <string>

#include "core/device.h"
#include "launcher/parallel_options.h"

namespace meridian::launcher {

// Throws meridian::Error naming the rank, the host and the device when the GPU is not there (no
// driver, no device, fewer devices than ranks on the node, or a build without CUDA).
Device bind_device(DeviceKind kind, int world_rank, int local_rank, const std::string& host);

}  // namespace meridian::launcher

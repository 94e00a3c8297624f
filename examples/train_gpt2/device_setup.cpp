#include "device_setup.h"

#include "launcher/usage_error.h"

#if MERIDIAN_HAS_NCCL
#include "ops/cuda/runtime.h"
#include "parallel/comm/nccl_communicator.h"
#endif

namespace meridian::train {

comm::TensorGroupFactory tensor_groups_on(launcher::Runtime& runtime, Device device) {
  if (!device.is_cuda()) return {};
  return [&runtime, device](std::shared_ptr<comm::Communicator> host_group) -> std::shared_ptr<comm::Communicator> {
    if (host_group->size() == 1) return host_group;
#if MERIDIAN_HAS_NCCL
    return comm::NcclCommunicator::create(
        host_group, comm::NcclOptions{device.index, ops::cuda::compute_stream(device.index), runtime.watchdog()});
#else
    (void)runtime;
    MERIDIAN_USAGE_ERROR("--device ", device.to_string(), ": the ", host_group->name(), " group of ",
                         host_group->size(), " ranks needs NCCL, and this build has none");
#endif
  };
}

void check_device_options(const TrainOptions& options, Device device) {
  if (options.optimizer != "adamw")
    MERIDIAN_USAGE_ERROR("--optimizer ", options.optimizer, " with --device ", device.to_string(),
                         ": only adamw has a CUDA kernel");
}

}  // namespace meridian::train

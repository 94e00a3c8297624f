#include "parallel/tensor_parallel/shard_gather.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace meridian::parallel {

Tensor gather_logical_tensor(const nn::NamedParameter& parameter, comm::Communicator& group) {
  const Tensor local = parameter.tensor.detach().contiguous();
  if (!parameter.shard) return local.device().is_cuda() ? local.to(Device::cpu()) : local.clone();
  // NCCL gathers device tensors (the pieces of a model trained on GPUs); the placing is on the host.
  const Device device = group.backend() == "nccl" ? local.device() : Device::cpu();
  const ShardSpec& shard = *parameter.shard;
  const int size = group.size();
  const int64_t numel = local.numel();
  const auto rank = static_cast<int64_t>(shard.offsets.size());

  // Pieces differ only in their offsets: gather the values and the offsets, then place each piece.
  std::vector<int32_t> my_offsets;
  for (int64_t offset : shard.offsets) {
    MERIDIAN_CHECK(offset <= std::numeric_limits<int32_t>::max(), "gather '", parameter.name, "': offset ", offset);
    my_offsets.push_back(static_cast<int32_t>(offset));
  }
  Tensor values = Tensor::empty({size * numel}, DType::f32, device);
  Tensor offsets = Tensor::empty({size * rank}, DType::i32, device);
  auto gathered_values = group.all_gather(local.to(device).view({numel}), values);
  auto gathered_offsets = group.all_gather(Tensor::from_vector<int32_t>(my_offsets, {rank}).to(device), offsets);
  gathered_values->wait();
  gathered_offsets->wait();
  values = values.to(Device::cpu());  // waits for the gather on a GPU
  offsets = offsets.to(Device::cpu());

  Tensor logical = Tensor::zeros(shard.global_shape);
  float* out = logical.data<float>();
  for (int r = 0; r < size; ++r) {
    const ShardSpec piece{shard.global_shape,
                          Shape(offsets.data<int32_t>() + r * rank, offsets.data<int32_t>() + (r + 1) * rank),
                          shard.parts};
    const ShardRuns runs = shard_runs(local.shape(), &piece, parameter.name);
    const float* source = values.data<float>() + r * numel;
    for (size_t k = 0; k < runs.starts.size(); ++k)
      std::copy_n(source + static_cast<int64_t>(k) * runs.length, runs.length, out + runs.starts[k]);
  }
  return logical;
}

}  // namespace meridian::parallel

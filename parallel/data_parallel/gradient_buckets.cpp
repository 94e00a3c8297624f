#include "parallel/data_parallel/gradient_buckets.h"

#include <algorithm>

namespace meridian::parallel {

std::vector<Bucket> build_buckets(const std::vector<nn::NamedParameter>& parameters, size_t bucket_bytes,
                                  int shards, const std::vector<std::string>& own_bucket) {
  MERIDIAN_CHECK(shards >= 1, "build_buckets: ", shards, " shards");
  std::vector<Bucket> buckets;
  Bucket current;
  size_t current_bytes = 0;
  auto close_bucket = [&] {
    if (current.slots.empty()) return;
    current.padded_numel = (current.numel + shards - 1) / shards * shards;
    buckets.push_back(std::move(current));
    current = Bucket();
    current_bytes = 0;
  };
  for (auto it = parameters.rbegin(); it != parameters.rend(); ++it) {
    const Tensor& param = it->tensor;
    if (param.dtype() != DType::f32 || !param.is_contiguous())
      MERIDIAN_FAIL("data parallel: parameter '", it->name, "' must be a contiguous f32 tensor");
    const size_t bytes = param.nbytes();
    const bool alone = std::find(own_bucket.begin(), own_bucket.end(), it->name) != own_bucket.end();
    if (!current.slots.empty() && (alone || current_bytes + bytes > bucket_bytes)) close_bucket();
    current.slots.push_back({it->name, param, current.numel, param.numel(), it->weight_decay, it->shard.has_value()});
    current.numel += param.numel();
    current_bytes += bytes;
    if (alone) close_bucket();
  }
  close_bucket();

  for (Bucket& bucket : buckets) {
    bucket.flat_params = Tensor::zeros({bucket.padded_numel}, DType::f32, bucket.slots.front().param.device());
    for (BucketSlot& slot : bucket.slots) slot.param.rebind_storage(bucket.flat_params.storage(), slot.offset);
  }
  return buckets;
}

}  // namespace meridian::parallel

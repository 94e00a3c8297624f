#pragma once
// Gradient buckets: parameters grouped, in reverse registration order (roughly the order backward
// finishes them), into flat buffers of about `bucket_bytes`. Parameters and their gradients live in
// these buffers, so one collective moves a whole bucket and ZeRO can shard it by plain ranges.
#include <cstdint>
#include <string>
#include <vector>

#include "core/nn/module.h"
#include "core/tensor.h"

namespace meridian::parallel {

struct BucketSlot {
  std::string name;
  Tensor param;        // a view into the bucket's flat parameters
  int64_t offset = 0;  // in elements, within the bucket
  int64_t numel = 0;
  bool weight_decay = true;
  bool tensor_parallel_shard = false;  // one tp rank's piece of a logical tensor (it has a ShardSpec)
};

struct Bucket {
  std::vector<BucketSlot> slots;
  int64_t numel = 0;         // parameter elements
  int64_t padded_numel = 0;  // numel rounded up to a multiple of the shard count (zeros at the end)
  Tensor flat_params;        // (padded_numel) f32

  int64_t shard_numel(int shards) const { return padded_numel / shards; }
};

// Splits `parameters` into buckets (each at least one parameter; a parameter larger than
// `bucket_bytes`, or named in `own_bucket`, gets a bucket of its own) padded to a multiple of
// `shards`, and moves every parameter's storage into its bucket's flat buffer (values kept; every
// handle sees the move).
std::vector<Bucket> build_buckets(const std::vector<nn::NamedParameter>& parameters, size_t bucket_bytes,
                                  int shards, const std::vector<std::string>& own_bucket = {});

}  // namespace meridian::parallel

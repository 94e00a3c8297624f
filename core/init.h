#pragma once
// Parameter initialisation that depends only on (seed, parameter name, element index in the whole
// logical tensor): a shard initialises exactly the values it would hold in the unsharded tensor.
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace meridian {

// This tensor is the block at `offsets` of a logical tensor of `global_shape`. With parts > 1 the
// logical axis 0 is made of `parts` equal parts (the q, k and v rows of a fused projection) and this
// tensor stacks the same block of each part along axis 0: its block i starts at logical row
// i·global_shape[0]/parts + offsets[0]. So a tensor-parallel rank holds whole heads of q, k and v.
struct ShardSpec {
  Shape global_shape;
  Shape offsets;
  int64_t parts = 1;
};

// A tensor (whole or shard) as runs of elements consecutive both in it and in the logical tensor:
// local elements [k·length, (k+1)·length) are logical elements [starts[k], starts[k] + length).
// Initialisation, checkpoint slicing and gathering shards all walk these.
struct ShardRuns {
  int64_t length = 0;
  std::vector<int64_t> starts;
};

// `shard` == nullptr: the tensor is the whole logical tensor. Throws (naming `name`) when the shard
// does not fit its logical tensor.
ShardRuns shard_runs(const Shape& local_shape, const ShardSpec* shard, std::string_view name);
// Elements of the logical tensor a shard describes (the tensor's own when `shard` is null).
int64_t logical_numel(const Shape& local_shape, const ShardSpec* shard);

enum class InitKind { zeros, ones, normal };

struct InitSpec {
  InitKind kind = InitKind::zeros;
  float std = 0.0f;
  // For normal init: logical rows from this index on stay zero (a padded vocabulary). -1 = none.
  int64_t zero_rows_from = -1;

  static InitSpec zeros() { return {InitKind::zeros, 0.0f, -1}; }
  static InitSpec ones() { return {InitKind::ones, 0.0f, -1}; }
  static InitSpec normal(float std, int64_t zero_rows_from = -1) { return {InitKind::normal, std, zero_rows_from}; }
};

// Fills `tensor` (contiguous f32 on the cpu) per `spec`; `shard` == nullptr means it is the whole.
void initialize(Tensor& tensor, const InitSpec& spec, uint64_t seed, std::string_view name,
                const ShardSpec* shard = nullptr);

}  // namespace meridian

#pragma once
// Parameter initialisation that depends only on (seed, parameter name, element index in the whole
// logical tensor): a shard initialises exactly the values it would hold in the unsharded tensor.
#include <cstdint>
#include <string_view>

#include "core/tensor.h"

namespace meridian {

// This tensor is the block at `offsets` of a logical tensor of `global_shape`.
struct ShardSpec {
  Shape global_shape;
  Shape offsets;
};

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

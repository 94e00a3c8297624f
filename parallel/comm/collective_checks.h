#pragma once
// Argument checks shared by the backends, so that a wrong call fails the same way (and at the call,
// not inside MPI or NCCL) whichever backend runs it. Messages start with "<op> on group <name>:".
#include <string>
#include <string_view>

#include "core/tensor.h"
#include "parallel/comm/reduce_op.h"

namespace meridian::comm {

struct OpContext {
  std::string_view op;  // "all_reduce", ...
  const std::string& group;
  int group_size;
};

// Defined, contiguous and on `device`.
void check_tensor(const OpContext& context, std::string_view role, const Tensor& tensor,
                  Device device);
// The dtype can be reduced with `op` (f32, bf16, f16, i32; avg needs a floating dtype).
void check_reducible(const OpContext& context, DType dtype, ReduceOp op);
void check_same_dtype(const OpContext& context, const Tensor& a, const Tensor& b);
// numel(large) == group_size × numel(small): the shape rule of all_gather and reduce_scatter.
void check_chunked(const OpContext& context, const Tensor& large, std::string_view large_role,
                   const Tensor& small, std::string_view small_role);
void check_root(const OpContext& context, int root);
// A rank of the group other than `self` (sending to oneself is a bug in the caller's schedule).
void check_peer(const OpContext& context, int peer, int self);

// How the small buffer of all_gather / reduce_scatter sits against the large one.
enum class Placement { separate, in_place };
// in_place when `small` is exactly chunk `rank` of `large`; separate when they do not overlap;
// throws when they overlap any other way.
Placement chunk_placement(const OpContext& context, const Tensor& large, const Tensor& small,
                          int rank);

}  // namespace meridian::comm

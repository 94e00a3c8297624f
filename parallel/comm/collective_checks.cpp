#include "parallel/comm/collective_checks.h"

#include <cstdint>

#include "core/error.h"

namespace meridian::comm {
namespace {

std::string where(const OpContext& context) {
  return detail::concat(context.op, " on group ", context.group, ": ");
}

bool is_floating(DType dtype) {
  return dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16;
}

}  // namespace

void check_tensor(const OpContext& context, std::string_view role, const Tensor& tensor,
                  Device device) {
  if (!tensor.defined()) MERIDIAN_FAIL(where(context), role, " is an undefined tensor");
  if (!tensor.is_contiguous())
    MERIDIAN_FAIL(where(context), role, " must be contiguous (shape ", shape_str(tensor.shape()),
                  ", strides ", shape_str(tensor.strides()), ")");
  if (!(tensor.device() == device))
    MERIDIAN_FAIL(where(context), role, " is on ", tensor.device().to_string(),
                  " but this communicator works on ", device.to_string());
}

void check_reducible(const OpContext& context, DType dtype, ReduceOp op) {
  if (dtype == DType::u16)
    MERIDIAN_FAIL(where(context), "cannot reduce dtype u16 (f32, bf16, f16 and i32 reduce)");
  if (op == ReduceOp::avg && !is_floating(dtype))
    MERIDIAN_FAIL(where(context), "avg needs a floating dtype, got ", dtype_name(dtype));
}

void check_same_dtype(const OpContext& context, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    MERIDIAN_FAIL(where(context), "input is ", dtype_name(a.dtype()), " but output is ",
                  dtype_name(b.dtype()));
}

void check_chunked(const OpContext& context, const Tensor& large, std::string_view large_role,
                   const Tensor& small, std::string_view small_role) {
  if (large.numel() != static_cast<int64_t>(context.group_size) * small.numel())
    MERIDIAN_FAIL(where(context), large_role, " has ", large.numel(), " elements but must have ",
                  context.group_size, " ranks x ", small.numel(), " (", small_role,
                  ") = ", static_cast<int64_t>(context.group_size) * small.numel());
}

void check_root(const OpContext& context, int root) {
  if (root < 0 || root >= context.group_size)
    MERIDIAN_FAIL(where(context), "root ", root, " is not a rank of this group of ",
                  context.group_size);
}

void check_peer(const OpContext& context, int peer, int self) {
  if (peer < 0 || peer >= context.group_size)
    MERIDIAN_FAIL(where(context), "peer ", peer, " is not a rank of this group of ",
                  context.group_size);
  if (peer == self) MERIDIAN_FAIL(where(context), "rank ", self, " cannot exchange with itself");
}

Placement chunk_placement(const OpContext& context, const Tensor& large, const Tensor& small,
                          int rank) {
  const auto* large_begin = static_cast<const char*>(large.raw_data());
  const auto* small_begin = static_cast<const char*>(small.raw_data());
  const size_t large_bytes = large.nbytes();
  const size_t small_bytes = small.nbytes();
  if (small_bytes == 0 || large_bytes == 0) return Placement::separate;
  const auto large_start = reinterpret_cast<uintptr_t>(large_begin);
  const auto small_start = reinterpret_cast<uintptr_t>(small_begin);
  const bool overlap =
      small_start < large_start + large_bytes && large_start < small_start + small_bytes;
  if (!overlap) return Placement::separate;
  if (small_begin == large_begin + static_cast<size_t>(rank) * small_bytes)
    return Placement::in_place;
  MERIDIAN_FAIL(where(context), "input and output overlap, and not as output chunk ", rank,
                " (the only in-place layout)");
}

}  // namespace meridian::comm

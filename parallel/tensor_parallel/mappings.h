#pragma once
// The differentiable maps every tensor-parallel layer is made of (Megatron's mappings.py). Each is
// an autograd function whose forward or backward runs a collective on the tensor-parallel group;
// with a group of one (or none) every map is the identity and returns its input.
//
// Tensor-parallel region: each rank holds a slice of the hidden (last) axis.
//   copy_to      forward identity            backward all-reduce      (input of a column-parallel layer)
//   reduce_from  forward all-reduce          backward identity        (output of a row-parallel layer)
//   scatter_to   forward keep own last-axis slice   backward all-gather
//   gather_from  forward all-gather the last axis   backward keep own slice
//
// Sequence-parallel region: (B, T, ...) tensors of which rank r holds sequence positions
// [r·T/tp, (r+1)·T/tp) of every sequence, shape (B, T/tp, ...).
//   scatter_to_sequence      forward keep own positions          backward all-gather
//   gather_from_sequence     forward all-gather the positions    backward reduce-scatter
//   reduce_scatter_to_sequence  forward reduce-scatter           backward all-gather
//
// All ranks of the group must call the same maps in the same order (they do: every rank runs the
// same model). Collectives are timed under the profiler names tp.all_reduce, tp.all_gather and
// tp.reduce_scatter.
#include <memory>

#include "core/tensor.h"
#include "parallel/comm/communicator.h"

namespace meridian::parallel {

using GroupPtr = std::shared_ptr<comm::Communicator>;

Tensor copy_to_tensor_parallel_region(const Tensor& x, const GroupPtr& group);
Tensor reduce_from_tensor_parallel_region(const Tensor& x, const GroupPtr& group);
Tensor scatter_to_tensor_parallel_region(const Tensor& x, const GroupPtr& group);
Tensor gather_from_tensor_parallel_region(const Tensor& x, const GroupPtr& group);

Tensor scatter_to_sequence_parallel_region(const Tensor& x, const GroupPtr& group);
Tensor gather_from_sequence_parallel_region(const Tensor& x, const GroupPtr& group);
Tensor reduce_scatter_to_sequence_parallel_region(const Tensor& x, const GroupPtr& group);

}  // namespace meridian::parallel

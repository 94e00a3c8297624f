#include "parallel/tensor_parallel/mappings.h"

#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/profiler.h"
#include "core/gradient_accumulation.h"
#include "parallel/tensor_parallel/axis_chunks.h"

namespace meridian::parallel {

namespace {

constexpr int kHiddenAxis = -1;
constexpr int kSequenceAxis = 1;

bool trivial(const GroupPtr& group) { return group == nullptr || group->size() == 1; }

// The helpers below work on values only: the maps record their own autograd nodes, so inputs are
// detached first and no copy or view here is recorded.

// Sum over the group, into a new tensor.
Tensor all_reduce_sum(const Tensor& x, comm::Communicator& group, std::string_view phase) {
  Tensor out = x.detach().clone();
  profiler::Scope scope("tp.all_reduce", phase);
  group.all_reduce(out, comm::ReduceOp::sum)->wait();
  return out;
}

// The ranks' pieces concatenated along `axis` (each piece is that axis's chunk of the result).
Tensor all_gather_along(const Tensor& x, int axis, comm::Communicator& group, std::string_view phase) {
  const Tensor piece = x.detach().contiguous();
  Shape shape = piece.shape();
  const size_t a = static_cast<size_t>(axis < 0 ? axis + piece.ndim() : axis);
  shape.at(a) *= group.size();
  const AxisSplit split = split_axis(shape, axis, group.size(), "all-gather");
  Tensor out = Tensor::empty(shape, piece.dtype(), piece.device());
  if (split.outer == 1) {
    profiler::Scope scope("tp.all_gather", phase);
    group.all_gather(piece, out)->wait();
    return out;
  }
  Tensor gathered = Tensor::empty({shape_numel(shape)}, piece.dtype(), piece.device());
  {
    profiler::Scope scope("tp.all_gather", phase);
    group.all_gather(piece.view({piece.numel()}), gathered)->wait();
  }
  from_rank_major(out, gathered, split);
  return out;
}

// Sum over the group of `x`, of which this rank keeps its chunk along `axis`.
Tensor reduce_scatter_along(const Tensor& x, int axis, comm::Communicator& group, std::string_view phase) {
  const Tensor whole = x.detach().contiguous();
  const AxisSplit split = split_axis(whole.shape(), axis, group.size(), "reduce-scatter");
  Shape shape = whole.shape();
  shape.at(static_cast<size_t>(axis < 0 ? axis + whole.ndim() : axis)) /= group.size();
  Tensor out = Tensor::empty(shape, whole.dtype(), whole.device());
  Tensor staging = Tensor::empty({whole.numel()}, whole.dtype(), whole.device());
  if (split.outer == 1)
    staging.copy_(whole.view({whole.numel()}));
  else
    to_rank_major(staging, whole, split);
  profiler::Scope scope("tp.reduce_scatter", phase);
  group.reduce_scatter(staging, out, comm::ReduceOp::sum)->wait();
  return out;
}

// This rank's chunk of `x` along `axis`.
Tensor own_chunk(const Tensor& x, int axis, const comm::Communicator& group) {
  const Tensor whole = x.detach().contiguous();
  const AxisSplit split = split_axis(whole.shape(), axis, group.size(), "tensor-parallel split");
  Shape shape = whole.shape();
  shape.at(static_cast<size_t>(axis < 0 ? axis + whole.ndim() : axis)) /= group.size();
  Tensor out = Tensor::empty(shape, whole.dtype(), whole.device());
  copy_part(out, whole, split, group.rank());
  return out;
}

// In the gradient's dtype: f32, or bf16 under mixed precision (the collectives above sum bf16 with
// fp32 arithmetic per pairwise step, as NCCL's bf16 all-reduce does).
void accumulate(autograd::BackwardContext& ctx, const Tensor& gradient) {
  ::meridian::detail::accumulate_gradient(ctx.input_grad(0), gradient);
}

// The maps take f32 or bf16 on the group's device: cpu tensors over MPI, cuda tensors over NCCL
// (whose collectives order themselves against the compute stream: wait() does not block the host).
void require_activation(const Tensor& x, const comm::Communicator& group, std::string_view map) {
  fn::detail::require_float(x, map, "input");
  const bool nccl = group.backend() == "nccl";
  if (x.device().is_cuda() != nccl)
    MERIDIAN_FAIL(map, ": input on ", x.device().to_string(), " but the tensor-parallel group '", group.name(),
                  "' is ", group.backend(), " (cpu tensors need an MPI group, cuda tensors an NCCL group)");
}

}  // namespace

Tensor copy_to_tensor_parallel_region(const Tensor& x, const GroupPtr& group) {
  if (trivial(group)) return x;
  require_activation(x, *group, "copy_to_tensor_parallel_region");
  Tensor out = x.detach();  // identity: the output shares the input's storage
  autograd::record("copy_to_tensor_parallel_region", {x}, out, [group](autograd::BackwardContext& ctx) {
    accumulate(ctx, all_reduce_sum(ctx.grad_output(), *group, "backward"));
  });
  return out;
}

Tensor reduce_from_tensor_parallel_region(const Tensor& x, const GroupPtr& group) {
  if (trivial(group)) return x;
  require_activation(x, *group, "reduce_from_tensor_parallel_region");
  Tensor out = all_reduce_sum(x, *group, "forward");
  autograd::record("reduce_from_tensor_parallel_region", {x}, out,
                   [](autograd::BackwardContext& ctx) { accumulate(ctx, ctx.grad_output()); });
  return out;
}

Tensor scatter_to_tensor_parallel_region(const Tensor& x, const GroupPtr& group) {
  if (trivial(group)) return x;
  require_activation(x, *group, "scatter_to_tensor_parallel_region");
  Tensor out = own_chunk(x, kHiddenAxis, *group);
  autograd::record("scatter_to_tensor_parallel_region", {x}, out, [group](autograd::BackwardContext& ctx) {
    accumulate(ctx, all_gather_along(ctx.grad_output(), kHiddenAxis, *group, "backward"));
  });
  return out;
}

Tensor gather_from_tensor_parallel_region(const Tensor& x, const GroupPtr& group) {
  if (trivial(group)) return x;
  require_activation(x, *group, "gather_from_tensor_parallel_region");
  Tensor out = all_gather_along(x, kHiddenAxis, *group, "forward");
  autograd::record("gather_from_tensor_parallel_region", {x}, out, [group](autograd::BackwardContext& ctx) {
    accumulate(ctx, own_chunk(ctx.grad_output(), kHiddenAxis, *group));
  });
  return out;
}

Tensor scatter_to_sequence_parallel_region(const Tensor& x, const GroupPtr& group) {
  if (trivial(group)) return x;
  require_activation(x, *group, "scatter_to_sequence_parallel_region");
  if (x.ndim() < 2) MERIDIAN_FAIL("scatter_to_sequence_parallel_region: input of shape ", shape_str(x.shape()), " has no sequence axis");
  Tensor out = own_chunk(x, kSequenceAxis, *group);
  autograd::record("scatter_to_sequence_parallel_region", {x}, out, [group](autograd::BackwardContext& ctx) {
    accumulate(ctx, all_gather_along(ctx.grad_output(), kSequenceAxis, *group, "backward"));
  });
  return out;
}

Tensor gather_from_sequence_parallel_region(const Tensor& x, const GroupPtr& group) {
  if (trivial(group)) return x;
  require_activation(x, *group, "gather_from_sequence_parallel_region");
  if (x.ndim() < 2) MERIDIAN_FAIL("gather_from_sequence_parallel_region: input of shape ", shape_str(x.shape()), " has no sequence axis");
  Tensor out = all_gather_along(x, kSequenceAxis, *group, "forward");
  autograd::record("gather_from_sequence_parallel_region", {x}, out, [group](autograd::BackwardContext& ctx) {
    accumulate(ctx, reduce_scatter_along(ctx.grad_output(), kSequenceAxis, *group, "backward"));
  });
  return out;
}

Tensor reduce_scatter_to_sequence_parallel_region(const Tensor& x, const GroupPtr& group) {
  if (trivial(group)) return x;
  require_activation(x, *group, "reduce_scatter_to_sequence_parallel_region");
  if (x.ndim() < 2) MERIDIAN_FAIL("reduce_scatter_to_sequence_parallel_region: input of shape ", shape_str(x.shape()), " has no sequence axis");
  Tensor out = reduce_scatter_along(x, kSequenceAxis, *group, "forward");
  autograd::record("reduce_scatter_to_sequence_parallel_region", {x}, out, [group](autograd::BackwardContext& ctx) {
    accumulate(ctx, all_gather_along(ctx.grad_output(), kSequenceAxis, *group, "backward"));
  });
  return out;
}

}  // namespace meridian::parallel

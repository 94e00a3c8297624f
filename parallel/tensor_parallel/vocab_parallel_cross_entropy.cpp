#include "parallel/tensor_parallel/vocab_parallel_cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/profiler.h"
#include "ops/cpu/vocab_slice_cross_entropy.h"

namespace meridian::parallel {

namespace {

void all_reduce(Tensor& values, comm::ReduceOp op, const TensorParallelContext& context) {
  if (!context.enabled()) return;
  profiler::Scope scope("tp.all_reduce", "forward");
  context.group->all_reduce(values, op)->wait();
}

}  // namespace

Tensor vocab_parallel_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t vocab_size,
                                    const TensorParallelContext& context) {
  profiler::Scope scope("vocab_parallel_cross_entropy", "forward");
  fn::detail::require_float(logits, "vocab_parallel_cross_entropy", "logits");
  if (!logits.device().is_cpu())
    MERIDIAN_FAIL("vocab_parallel_cross_entropy: logits on ", logits.device().to_string(), " (cpu only)");
  fn::detail::require_i32_cpu(targets, "vocab_parallel_cross_entropy", "targets");
  const int64_t slice_width = logits.ndim() ? logits.dim(-1) : 0;
  const Shape leading(logits.shape().begin(), logits.shape().end() - (logits.ndim() ? 1 : 0));
  if (targets.shape() != leading)
    MERIDIAN_FAIL("vocab_parallel_cross_entropy: targets of shape ", shape_str(targets.shape()),
                  " for logits of shape ", shape_str(logits.shape()));
  const int64_t padded = slice_width * context.size();
  if (vocab_size <= 0 || vocab_size > padded)
    MERIDIAN_FAIL("vocab_parallel_cross_entropy: vocabulary of ", vocab_size, " for ", context.size(),
                  " slices of ", slice_width, " logits");
  const int64_t first = context.rank() * slice_width;
  const int64_t real = std::clamp<int64_t>(vocab_size - first, 0, slice_width);
  const int64_t rows = targets.numel();
  const int32_t* target = targets.data<int32_t>();
  int64_t counted = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (target[i] >= vocab_size)
      MERIDIAN_FAIL("vocab_parallel_cross_entropy: target ", target[i], " at position ", i,
                    " is outside the vocabulary of ", vocab_size);
    counted += target[i] >= 0;
  }

  // bf16 logits (mixed precision) are widened once; the statistics are fp32 either way.
  const fn::detail::FloatView widened(logits, fn::detail::FloatView::Access::read);
  const float* x = widened.data();
  Tensor row_max = Tensor::empty({rows});
  ops::cpu::vocab_slice_row_max(row_max.data<float>(), x, rows, real, slice_width);
  all_reduce(row_max, comm::ReduceOp::max, context);
  // Sums of exponentials in the first half, the target logits in the second: one all-reduce.
  Tensor sums = Tensor::empty({2 * rows});
  ops::cpu::vocab_slice_sum_exp(sums.data<float>(), x, row_max.data<float>(), rows, real, slice_width);
  ops::cpu::vocab_slice_target_logit(sums.data<float>() + rows, x, target, first, rows, real, slice_width);
  all_reduce(sums, comm::ReduceOp::sum, context);

  Tensor lse = Tensor::empty({rows});
  double total = 0.0;
  for (int64_t i = 0; i < rows; ++i) {
    const float row_lse = row_max.data<float>()[i] + std::log(sums.data<float>()[i]);
    lse.data<float>()[i] = row_lse;
    if (target[i] >= 0) total += row_lse - sums.data<float>()[rows + i];
  }
  Tensor out = Tensor::empty({});
  out.data<float>()[0] = counted ? static_cast<float>(total / static_cast<double>(counted)) : 0.0f;
  autograd::record("vocab_parallel_cross_entropy", {logits, targets}, out,
                   [logits, targets, lse, rows, first, real, slice_width, counted](autograd::BackwardContext& ctx) {
                     const float weight = counted ? ctx.grad_output().data<float>()[0] / static_cast<float>(counted) : 0.0f;
                     const std::vector<float> dlosses(static_cast<size_t>(rows), weight);
                     using Access = fn::detail::FloatView::Access;
                     const fn::detail::FloatView dlogits(ctx.input_grad(0), Access::accumulate),
                         saved_logits(logits, Access::read);
                     ops::cpu::vocab_slice_cross_entropy_backward(dlogits.data(), dlosses.data(), saved_logits.data(),
                                                                  lse.data<float>(), targets.data<int32_t>(), first,
                                                                  rows, real, slice_width);
                   });
  return out;
}

}  // namespace meridian::parallel

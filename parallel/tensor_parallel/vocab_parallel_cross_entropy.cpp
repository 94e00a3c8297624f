#include "parallel/tensor_parallel/vocab_parallel_cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/float_view.h"
#include "core/profiler.h"
#include "core/cuda_dispatch.h"
#include "ops/cpu/vocab_slice_cross_entropy.h"

#if MERIDIAN_CUDA
#include "ops/cuda/vocab_slice_cross_entropy.h"
#endif

namespace meridian::parallel {

namespace {

void all_reduce(Tensor& values, comm::ReduceOp op, const TensorParallelContext& context) {
  if (!context.enabled()) return;
  profiler::Scope scope("tp.all_reduce", "forward");
  context.group->all_reduce(values, op)->wait();
}

// The slice's geometry: columns [first, first + slice_width) of the padded vocabulary, the first
// `real` of them real entries.
struct Slice {
  int64_t rows, first, real, width;
};

// Per-row statistics of the whole vocabulary, combined over the group, on the logits' device:
// row_max (rows), and sums = [Σ exp(x − max) (rows) | target logit (rows)].
struct Statistics {
  Tensor row_max, sums;
};

Statistics slice_statistics_cpu(const Tensor& logits, const Tensor& targets, const Slice& s,
                                const TensorParallelContext& context) {
  // bf16 logits (mixed precision) are widened once; the statistics are fp32 either way.
  const fn::detail::FloatView widened(logits, fn::detail::FloatView::Access::read);
  const float* x = widened.data();
  Statistics out{Tensor::empty({s.rows}), Tensor::empty({2 * s.rows})};
  ops::cpu::vocab_slice_row_max(out.row_max.data<float>(), x, s.rows, s.real, s.width);
  all_reduce(out.row_max, comm::ReduceOp::max, context);
  // Sums of exponentials in the first half, the target logits in the second: one all-reduce.
  ops::cpu::vocab_slice_sum_exp(out.sums.data<float>(), x, out.row_max.data<float>(), s.rows, s.real, s.width);
  ops::cpu::vocab_slice_target_logit(out.sums.data<float>() + s.rows, x, targets.data<int32_t>(), s.first, s.rows,
                                     s.real, s.width);
  all_reduce(out.sums, comm::ReduceOp::sum, context);
  return out;
}

#if MERIDIAN_CUDA
Statistics slice_statistics_cuda(const Tensor& logits, const Tensor& device_targets, const Slice& s,
                                 const TensorParallelContext& context) {
  const Device device = logits.device();
  Statistics out{Tensor::empty({s.rows}, DType::f32, device), Tensor::empty({2 * s.rows}, DType::f32, device)};
  {
    const fn::detail::CudaScope cuda(device);
    fn::detail::dispatch_float(logits.dtype(), [&]<class E>() {
      ops::cuda::vocab_slice_row_max(out.row_max.data<float>(), fn::detail::element_ptr<E>(logits), s.rows, s.real,
                                     s.width, cuda.stream());
    });
  }
  all_reduce(out.row_max, comm::ReduceOp::max, context);
  const fn::detail::CudaScope cuda(device);
  fn::detail::dispatch_float(logits.dtype(), [&]<class E>() {
    ops::cuda::vocab_slice_sum_exp(out.sums.data<float>(), fn::detail::element_ptr<E>(logits),
                                   out.row_max.data<float>(), s.rows, s.real, s.width, cuda.stream());
    ops::cuda::vocab_slice_target_logit(out.sums.data<float>() + s.rows, fn::detail::element_ptr<E>(logits),
                                        device_targets.data<int32_t>(), s.first, s.rows, s.real, s.width,
                                        cuda.stream());
  });
  all_reduce(out.sums, comm::ReduceOp::sum, context);
  return out;
}
#endif

// dlogits += dloss · (softmax − one-hot) over the slice, on the logits' device.
void slice_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse, const Tensor& targets, float weight,
                    const Slice& s) {
  if (logits.device().is_cuda()) {
#if MERIDIAN_CUDA
    Tensor dlosses = Tensor::empty({s.rows}, DType::f32, logits.device());
    dlosses.fill_(weight);  // on the device: no upload and no wait
    const fn::detail::CudaScope cuda(logits.device());
    fn::detail::dispatch_float(logits.dtype(), [&]<class E>() {
      ops::cuda::vocab_slice_cross_entropy_backward(
          fn::detail::element_ptr<E>(dlogits), dlosses.data<float>(), fn::detail::element_ptr<E>(logits),
          lse.data<float>(), targets.data<int32_t>(), s.first, s.rows, s.real, s.width, cuda.stream());
    });
#endif
    return;
  }
  const std::vector<float> dlosses(static_cast<size_t>(s.rows), weight);
  using Access = fn::detail::FloatView::Access;
  const fn::detail::FloatView gradient(dlogits, Access::accumulate), saved_logits(logits, Access::read);
  ops::cpu::vocab_slice_cross_entropy_backward(gradient.data(), dlosses.data(), saved_logits.data(),
                                               lse.data<float>(), targets.data<int32_t>(), s.first, s.rows, s.real,
                                               s.width);
}

}  // namespace

// The statistics run where the logits are (cpu over MPI, cuda over NCCL); the mean loss is formed
// on the host in double, in the same order for both, from the combined statistics.
Tensor vocab_parallel_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t vocab_size,
                                    const TensorParallelContext& context) {
  profiler::Scope scope("vocab_parallel_cross_entropy", "forward");
  fn::detail::require_float(logits, "vocab_parallel_cross_entropy", "logits");
  fn::detail::require_i32(targets, "vocab_parallel_cross_entropy", "targets");
  const Device device = logits.device();
  if (!targets.device().is_cpu() && targets.device() != device)
    MERIDIAN_FAIL("vocab_parallel_cross_entropy: targets on ", targets.device().to_string(), ", logits on ",
                  device.to_string());
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
  const Slice slice{targets.numel(), first, std::clamp<int64_t>(vocab_size - first, 0, slice_width), slice_width};
  // Targets are checked (and the loss averaged) on the host; the kernels read them where the logits are.
  const Tensor host_targets = targets.to(Device::cpu());
  const int32_t* target = host_targets.data<int32_t>();
  int64_t counted = 0;
  for (int64_t i = 0; i < slice.rows; ++i) {
    if (target[i] >= vocab_size)
      MERIDIAN_FAIL("vocab_parallel_cross_entropy: target ", target[i], " at position ", i,
                    " is outside the vocabulary of ", vocab_size);
    counted += target[i] >= 0;
  }
  const Tensor saved_targets = targets.to(device);
  Statistics statistics;
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    statistics = slice_statistics_cuda(logits.detach(), saved_targets, slice, context);
#endif
  } else {
    statistics = slice_statistics_cpu(logits, host_targets, slice, context);
  }
  const Tensor row_max = statistics.row_max.to(Device::cpu()), sums = statistics.sums.to(Device::cpu());

  Tensor lse = Tensor::empty({slice.rows});
  double total = 0.0;
  for (int64_t i = 0; i < slice.rows; ++i) {
    const float row_lse = row_max.data<float>()[i] + std::log(sums.data<float>()[i]);
    lse.data<float>()[i] = row_lse;
    if (target[i] >= 0) total += row_lse - sums.data<float>()[slice.rows + i];
  }
  const Tensor saved_lse = lse.to(device);
  Tensor out =
      Tensor::full({}, counted ? static_cast<float>(total / static_cast<double>(counted)) : 0.0f).to(device);
  autograd::record("vocab_parallel_cross_entropy", {logits, targets}, out,
                   [logits, saved_targets, saved_lse, slice, counted](autograd::BackwardContext& ctx) {
                     const float upstream = ctx.grad_output().to(Device::cpu()).data<float>()[0];
                     const float weight = counted ? upstream / static_cast<float>(counted) : 0.0f;
                     slice_backward(ctx.input_grad(0), logits, saved_lse, saved_targets, weight, slice);
                   });
  return out;
}

}  // namespace meridian::parallel

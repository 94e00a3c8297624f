#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/embedding.h"

#if MERIDIAN_CUDA
#include "ops/cuda/embedding.h"
#endif

namespace meridian::fn {

namespace {

// The ids where the host can read them: the tensor itself on the cpu, a copy for cuda ids (the ids
// are checked before any kernel reads them; the copy waits for the device, which at the start of a
// forward pass has little queued).
Tensor host_ids(const Tensor& ids) { return ids.device().is_cuda() ? ids.to(Device::cpu()) : ids; }

}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& table) {
  profiler::Scope scope("embedding", "forward");
  detail::require_i32(ids, "embedding", "ids");
  detail::require_f32(table, "embedding", "table");
  detail::require_ndim(table, 2, "embedding", "table");
  const Device device = detail::require_same_device("embedding", {{"ids", &ids}, {"table", &table}});
  const int64_t rows = table.dim(0), channels = table.dim(1), n = ids.numel();
  const Tensor checked_ids = host_ids(ids);
  const int32_t* id = checked_ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    if (id[i] < 0 || id[i] >= rows)
      MERIDIAN_FAIL("embedding: id ", id[i], " at position ", i, " is outside table '", table.name(), "' with ",
                    rows, " rows");
  Shape out_shape = ids.shape();
  out_shape.push_back(channels);
  Tensor out = Tensor::empty(out_shape, DType::f32, device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    ops::cuda::embedding_forward(out.data<float>(), ids.data<int32_t>(), table.data<float>(), n, channels,
                                 cuda.stream());
#endif
  } else {
    ops::cpu::embedding_forward(out.data<float>(), id, table.data<float>(), n, channels);
  }
  autograd::record("embedding", {ids, table}, out, [ids, n, channels](autograd::BackwardContext& ctx) {
    if (ids.device().is_cuda()) {
#if MERIDIAN_CUDA
      const detail::CudaScope cuda(ids.device());
      ops::cuda::embedding_backward(ctx.input_grad(1).data<float>(), ctx.grad_output().data<float>(),
                                    ids.data<int32_t>(), n, channels, cuda.stream());
#endif
      return;
    }
    ops::cpu::embedding_backward(ctx.input_grad(1).data<float>(), ctx.grad_output().data<float>(),
                                 ids.data<int32_t>(), n, channels);
  });
  return out;
}

Tensor embedding_slice(const Tensor& ids, const Tensor& table, int64_t first_row) {
  profiler::Scope scope("embedding_slice", "forward");
  detail::require_i32(ids, "embedding_slice", "ids");
  detail::require_f32(table, "embedding_slice", "table");
  detail::require_ndim(table, 2, "embedding_slice", "table");
  const Device device = detail::require_same_device("embedding_slice", {{"ids", &ids}, {"table", &table}});
  const int64_t rows = table.dim(0), channels = table.dim(1), n = ids.numel();
  const Tensor checked_ids = host_ids(ids);
  const int32_t* id = checked_ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    if (id[i] < 0) MERIDIAN_FAIL("embedding_slice: id ", id[i], " at position ", i, " is negative");
  Shape out_shape = ids.shape();
  out_shape.push_back(channels);
  Tensor out = Tensor::empty(out_shape, DType::f32, device);
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    ops::cuda::embedding_slice_forward(out.data<float>(), ids.data<int32_t>(), table.data<float>(), first_row, rows,
                                       n, channels, cuda.stream());
#endif
  } else {
    ops::cpu::embedding_slice_forward(out.data<float>(), id, table.data<float>(), first_row, rows, n, channels);
  }
  autograd::record("embedding_slice", {ids, table}, out,
                   [ids, first_row, rows, n, channels](autograd::BackwardContext& ctx) {
                     if (ids.device().is_cuda()) {
#if MERIDIAN_CUDA
                       const detail::CudaScope cuda(ids.device());
                       ops::cuda::embedding_slice_backward(ctx.input_grad(1).data<float>(),
                                                           ctx.grad_output().data<float>(), ids.data<int32_t>(),
                                                           first_row, rows, n, channels, cuda.stream());
#endif
                       return;
                     }
                     ops::cpu::embedding_slice_backward(ctx.input_grad(1).data<float>(), ctx.grad_output().data<float>(),
                                                        ids.data<int32_t>(), first_row, rows, n, channels);
                   });
  return out;
}

}  // namespace meridian::fn

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

// The checks both lookups share; returns the device they run on.
Device check_lookup(const char* name, const Tensor& ids, const Tensor& table) {
  detail::require_i32(ids, name, "ids");
  detail::require_f32(table, name, "table");
  detail::require_ndim(table, 2, name, "table");
  return detail::require_same_device(name, {{"ids", &ids}, {"table", &table}});
}

// Rows [first_row, first_row + table rows) of a logical table: ids outside them give zero rows and
// no gradient (embedding passes first_row 0 and ids it has checked to lie inside).
Tensor lookup_rows(const char* name, const Tensor& ids, const Tensor& table, int64_t first_row, Device device) {
  const int64_t rows = table.dim(0), channels = table.dim(1), n = ids.numel();
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
    ops::cpu::embedding_slice_forward(out.data<float>(), ids.data<int32_t>(), table.data<float>(), first_row, rows, n,
                                      channels);
  }
  autograd::record(name, {ids, table}, out, [ids, first_row, rows, n, channels](autograd::BackwardContext& ctx) {
    float* dtable = ctx.input_grad(1).data<float>();
    const float* dout = ctx.grad_output().data<float>();
    if (ids.device().is_cuda()) {
#if MERIDIAN_CUDA
      const detail::CudaScope cuda(ids.device());
      ops::cuda::embedding_slice_backward(dtable, dout, ids.data<int32_t>(), first_row, rows, n, channels,
                                          cuda.stream());
#endif
      return;
    }
    ops::cpu::embedding_slice_backward(dtable, dout, ids.data<int32_t>(), first_row, rows, n, channels);
  });
  return out;
}

}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& table) {
  profiler::Scope scope("embedding", "forward");
  const Device device = check_lookup("embedding", ids, table);
  const int64_t rows = table.dim(0);
  const Tensor checked_ids = host_ids(ids);
  const int32_t* id = checked_ids.data<int32_t>();
  for (int64_t i = 0; i < ids.numel(); ++i)
    if (id[i] < 0 || id[i] >= rows)
      MERIDIAN_FAIL("embedding: id ", id[i], " at position ", i, " is outside table '", table.name(), "' with ",
                    rows, " rows");
  return lookup_rows("embedding", ids, table, 0, device);
}

Tensor embedding_slice(const Tensor& ids, const Tensor& table, int64_t first_row, int64_t total_rows) {
  profiler::Scope scope("embedding_slice", "forward");
  const Device device = check_lookup("embedding_slice", ids, table);
  const Tensor checked_ids = host_ids(ids);
  const int32_t* id = checked_ids.data<int32_t>();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    if (id[i] < 0) MERIDIAN_FAIL("embedding_slice: id ", id[i], " at position ", i, " is negative");
    if (total_rows >= 0 && id[i] >= total_rows)
      MERIDIAN_FAIL("embedding_slice: id ", id[i], " at position ", i, " is outside table '", table.name(),
                    "' of ", total_rows, " rows (this slice holds rows ", first_row, "…", first_row + table.dim(0) - 1,
                    ")");
  }
  return lookup_rows("embedding_slice", ids, table, first_row, device);
}

}  // namespace meridian::fn

#include "core/autograd/node.h"
#include "core/functions/checks.h"
#include "core/functions/functions.h"
#include "core/profiler.h"
#include "ops/cpu/embedding.h"

namespace meridian::fn {

Tensor embedding(const Tensor& ids, const Tensor& table) {
  profiler::Scope scope("embedding", "forward");
  detail::require_i32_cpu(ids, "embedding", "ids");
  detail::require_f32_cpu(table, "embedding", "table");
  detail::require_ndim(table, 2, "embedding", "table");
  const int64_t rows = table.dim(0), channels = table.dim(1), n = ids.numel();
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    if (id[i] < 0 || id[i] >= rows)
      MERIDIAN_FAIL("embedding: id ", id[i], " at position ", i, " is outside table '", table.name(), "' with ",
                    rows, " rows");
  Shape out_shape = ids.shape();
  out_shape.push_back(channels);
  Tensor out = Tensor::empty(out_shape);
  ops::cpu::embedding_forward(out.data<float>(), id, table.data<float>(), n, channels);
  autograd::record("embedding", {ids, table}, out, [ids, n, channels](autograd::BackwardContext& ctx) {
    ops::cpu::embedding_backward(ctx.input_grad(1).data<float>(), ctx.grad_output().data<float>(),
                                 ids.data<int32_t>(), n, channels);
  });
  return out;
}

Tensor embedding_slice(const Tensor& ids, const Tensor& table, int64_t first_row) {
  profiler::Scope scope("embedding_slice", "forward");
  detail::require_i32_cpu(ids, "embedding_slice", "ids");
  detail::require_f32_cpu(table, "embedding_slice", "table");
  detail::require_ndim(table, 2, "embedding_slice", "table");
  const int64_t rows = table.dim(0), channels = table.dim(1), n = ids.numel();
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    if (id[i] < 0) MERIDIAN_FAIL("embedding_slice: id ", id[i], " at position ", i, " is negative");
  Shape out_shape = ids.shape();
  out_shape.push_back(channels);
  Tensor out = Tensor::empty(out_shape);
  ops::cpu::embedding_slice_forward(out.data<float>(), id, table.data<float>(), first_row, rows, n, channels);
  autograd::record("embedding_slice", {ids, table}, out,
                   [ids, first_row, rows, n, channels](autograd::BackwardContext& ctx) {
                     ops::cpu::embedding_slice_backward(ctx.input_grad(1).data<float>(), ctx.grad_output().data<float>(),
                                                        ids.data<int32_t>(), first_row, rows, n, channels);
                   });
  return out;
}

}  // namespace meridian::fn

#include "core/init.h"

#include "core/random.h"

namespace meridian {

void initialize(Tensor& tensor, const InitSpec& spec, uint64_t seed, std::string_view name,
                const ShardSpec* shard) {
  MERIDIAN_CHECK(tensor.dtype() == DType::f32 && tensor.is_contiguous() && tensor.device().is_cpu(),
                 "initialize('", name, "') needs a contiguous f32 cpu tensor");
  if (spec.kind == InitKind::zeros) {
    tensor.zero_();
    return;
  }
  if (spec.kind == InitKind::ones) {
    tensor.fill_(1.0);
    return;
  }

  const Shape& local = tensor.shape();
  const Shape global = shard ? shard->global_shape : local;
  const Shape offsets = shard ? shard->offsets : Shape(local.size(), 0);
  MERIDIAN_CHECK(global.size() == local.size() && offsets.size() == local.size(),
                 "initialize('", name, "'): shard rank mismatch");
  for (size_t d = 0; d < local.size(); ++d)
    MERIDIAN_CHECK(offsets[d] >= 0 && offsets[d] + local[d] <= global[d], "initialize('", name,
                   "'): shard ", shape_str(local), " at ", shape_str(offsets), " outside ", shape_str(global));

  const uint64_t key = random::stream_key(seed, name);
  const Shape global_strides = contiguous_strides(global);
  // Walk the shard one innermost row at a time: inside a row, global indices are consecutive.
  const size_t rank = local.size();
  if (rank == 0) {
    tensor.data<float>()[0] = spec.std * random::normal(key, 0);
    return;
  }
  const int64_t row_length = local.back();
  const int64_t rows = row_length == 0 ? 0 : tensor.numel() / row_length;
  float* out = tensor.data<float>();
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t remaining = row;
    int64_t global_index = offsets[rank - 1] * global_strides[rank - 1];
    int64_t axis0 = 0;  // logical index along axis 0, which zero_rows_from refers to
    for (size_t d = rank - 1; d-- > 0;) {
      const int64_t i = remaining % local[d];
      remaining /= local[d];
      global_index += (offsets[d] + i) * global_strides[d];
      if (d == 0) axis0 = offsets[0] + i;
    }
    float* dst = out + row * row_length;
    for (int64_t j = 0; j < row_length; ++j) {
      const int64_t logical_row = rank == 1 ? offsets[0] + j : axis0;
      const bool padded = spec.zero_rows_from >= 0 && logical_row >= spec.zero_rows_from;
      dst[j] = padded ? 0.0f : spec.std * random::normal(key, static_cast<uint64_t>(global_index + j));
    }
  }
}

}  // namespace meridian

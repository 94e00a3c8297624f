#include "core/init.h"

#include "core/random.h"

namespace meridian {

ShardRuns shard_runs(const Shape& local, const ShardSpec* shard, std::string_view name) {
  const size_t rank = local.size();
  const int64_t numel = shape_numel(local);
  if (shard == nullptr) return numel == 0 ? ShardRuns{0, {}} : ShardRuns{numel, {0}};

  const Shape& global = shard->global_shape;
  const Shape& offsets = shard->offsets;
  const int64_t parts = shard->parts;
  MERIDIAN_CHECK(global.size() == rank && offsets.size() == rank, "shard of '", name, "': local shape ",
                 shape_str(local), ", global shape ", shape_str(global), " and offsets ", shape_str(offsets),
                 " differ in rank");
  MERIDIAN_CHECK(parts >= 1 && (parts == 1 || (rank >= 1 && global[0] % parts == 0 && local[0] % parts == 0)),
                 "shard of '", name, "': ", parts, " parts do not divide axis 0 of ", shape_str(local), " and ",
                 shape_str(global));
  if (rank == 0) return {1, {0}};
  const int64_t part_rows = global[0] / parts;
  const int64_t block_rows = local[0] / parts;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t extent = d == 0 ? block_rows : local[d];
    const int64_t limit = d == 0 ? part_rows : global[d];
    MERIDIAN_CHECK(offsets[d] >= 0 && offsets[d] + extent <= limit, "shard of '", name, "': block ",
                   shape_str(local), " at ", shape_str(offsets), " (", parts, " parts) lies outside ",
                   shape_str(global));
  }

  const Shape global_strides = contiguous_strides(global);
  // A 1-D tensor of several parts breaks into one run per part; otherwise every innermost row is a run.
  ShardRuns runs;
  runs.length = rank == 1 ? block_rows : local.back();
  if (runs.length == 0) return runs;
  const int64_t count = numel / runs.length;
  runs.starts.resize(static_cast<size_t>(count));
  for (int64_t run = 0; run < count; ++run) {
    if (rank == 1) {
      runs.starts[static_cast<size_t>(run)] = run * part_rows + offsets[0];
      continue;
    }
    int64_t remaining = run;
    int64_t start = offsets[rank - 1] * global_strides[rank - 1];
    for (size_t d = rank - 1; d-- > 0;) {
      const int64_t i = remaining % local[d];
      remaining /= local[d];
      const int64_t logical = d == 0 ? (i / block_rows) * part_rows + offsets[0] + i % block_rows : offsets[d] + i;
      start += logical * global_strides[d];
    }
    runs.starts[static_cast<size_t>(run)] = start;
  }
  return runs;
}

int64_t logical_numel(const Shape& local_shape, const ShardSpec* shard) {
  return shape_numel(shard ? shard->global_shape : local_shape);
}

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

  const ShardRuns runs = shard_runs(tensor.shape(), shard, name);
  const Shape global = shard ? shard->global_shape : tensor.shape();
  // zero_rows_from counts logical rows along axis 0: elements per row of the logical tensor.
  const int64_t row_elements = global.empty() ? 1 : contiguous_strides(global)[0];
  const uint64_t key = random::stream_key(seed, name);
  const auto count = static_cast<int64_t>(runs.starts.size());
  float* out = tensor.data<float>();
#pragma omp parallel for schedule(static) if (count > 16)
  for (int64_t run = 0; run < count; ++run) {
    const int64_t start = runs.starts[static_cast<size_t>(run)];
    float* dst = out + run * runs.length;
    for (int64_t j = 0; j < runs.length; ++j) {
      const int64_t logical_index = start + j;
      const bool padded = spec.zero_rows_from >= 0 && logical_index / row_elements >= spec.zero_rows_from;
      dst[j] = padded ? 0.0f : spec.std * random::normal(key, static_cast<uint64_t>(logical_index));
    }
  }
}

}  // namespace meridian

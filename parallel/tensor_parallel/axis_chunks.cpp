#include "parallel/tensor_parallel/axis_chunks.h"

#include <cstring>

namespace meridian::parallel {

AxisSplit split_axis(const Shape& shape, int axis, int64_t parts, std::string_view what) {
  const int rank = static_cast<int>(shape.size());
  const int a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) MERIDIAN_FAIL(what, ": no axis ", axis, " in shape ", shape_str(shape));
  if (parts <= 0 || shape[static_cast<size_t>(a)] % parts != 0)
    MERIDIAN_FAIL(what, ": axis ", a, " of shape ", shape_str(shape), " does not split into ", parts,
                  " equal parts (one per tensor-parallel rank)");
  AxisSplit split{1, parts, shape[static_cast<size_t>(a)] / parts};
  for (int d = 0; d < a; ++d) split.outer *= shape[static_cast<size_t>(d)];
  for (int d = a + 1; d < rank; ++d) split.chunk *= shape[static_cast<size_t>(d)];
  return split;
}

namespace {
size_t chunk_bytes(const AxisSplit& s) { return static_cast<size_t>(s.chunk) * sizeof(float); }
}  // namespace

void to_rank_major(float* dst, const float* src, const AxisSplit& s) {
  for (int64_t p = 0; p < s.parts; ++p)
    for (int64_t o = 0; o < s.outer; ++o)
      std::memcpy(dst + (p * s.outer + o) * s.chunk, src + (o * s.parts + p) * s.chunk, chunk_bytes(s));
}

void from_rank_major(float* dst, const float* src, const AxisSplit& s) {
  for (int64_t p = 0; p < s.parts; ++p)
    for (int64_t o = 0; o < s.outer; ++o)
      std::memcpy(dst + (o * s.parts + p) * s.chunk, src + (p * s.outer + o) * s.chunk, chunk_bytes(s));
}

void copy_part(float* dst, const float* src, const AxisSplit& s, int64_t part) {
  for (int64_t o = 0; o < s.outer; ++o)
    std::memcpy(dst + o * s.chunk, src + (o * s.parts + part) * s.chunk, chunk_bytes(s));
}

}  // namespace meridian::parallel

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

// Byte address of chunk `index` (in units of whole chunks) of a buffer.
char* chunk_at(void* base, int64_t index, size_t chunk_bytes) {
  return static_cast<char*>(base) + static_cast<size_t>(index) * chunk_bytes;
}
const char* chunk_at(const void* base, int64_t index, size_t chunk_bytes) {
  return static_cast<const char*>(base) + static_cast<size_t>(index) * chunk_bytes;
}

}  // namespace

void to_rank_major(void* dst, const void* src, const AxisSplit& s, size_t element_bytes) {
  const size_t bytes = static_cast<size_t>(s.chunk) * element_bytes;
  for (int64_t p = 0; p < s.parts; ++p)
    for (int64_t o = 0; o < s.outer; ++o)
      std::memcpy(chunk_at(dst, p * s.outer + o, bytes), chunk_at(src, o * s.parts + p, bytes), bytes);
}

void from_rank_major(void* dst, const void* src, const AxisSplit& s, size_t element_bytes) {
  const size_t bytes = static_cast<size_t>(s.chunk) * element_bytes;
  for (int64_t p = 0; p < s.parts; ++p)
    for (int64_t o = 0; o < s.outer; ++o)
      std::memcpy(chunk_at(dst, o * s.parts + p, bytes), chunk_at(src, p * s.outer + o, bytes), bytes);
}

void copy_part(void* dst, const void* src, const AxisSplit& s, int64_t part, size_t element_bytes) {
  const size_t bytes = static_cast<size_t>(s.chunk) * element_bytes;
  for (int64_t o = 0; o < s.outer; ++o)
    std::memcpy(chunk_at(dst, o, bytes), chunk_at(src, o * s.parts + part, bytes), bytes);
}

}  // namespace meridian::parallel

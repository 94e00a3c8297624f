#include "parallel/tensor_parallel/axis_chunks.h"

#include <cstring>

#include "core/cuda_dispatch.h"
#include "core/error.h"

#if MERIDIAN_CUDA
#include "ops/cuda/runtime.h"
#endif

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

// `rows` rows of `width` bytes from src (rows src_pitch apart) to dst (rows dst_pitch apart), both
// on `device`.
void copy_rows(Device device, char* dst, size_t dst_pitch, const char* src, size_t src_pitch, size_t width,
               int64_t rows) {
  if (device.is_cuda()) {
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(device);
    ops::cuda::copy_rows_on_device(dst, dst_pitch, src, src_pitch, width, static_cast<size_t>(rows), cuda.stream());
#endif
    return;
  }
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + static_cast<size_t>(r) * dst_pitch, src + static_cast<size_t>(r) * src_pitch, width);
}

struct Buffers {
  char* dst;
  const char* src;
  size_t chunk_bytes;
  Device device;
};

Buffers buffers(const Tensor& dst, const Tensor& src, const AxisSplit& s, std::string_view what) {
  if (dst.dtype() != src.dtype() || dst.device() != src.device() || !dst.is_contiguous() || !src.is_contiguous() ||
      dst.numel() < s.outer * s.chunk || src.numel() < s.outer * s.chunk)
    MERIDIAN_FAIL(what, ": needs contiguous tensors of one dtype on one device, large enough for the split");
  return {static_cast<char*>(dst.raw_data()), static_cast<const char*>(src.raw_data()),
          static_cast<size_t>(s.chunk) * dtype_size(dst.dtype()), dst.device()};
}

}  // namespace

void to_rank_major(const Tensor& dst, const Tensor& src, const AxisSplit& s) {
  const Buffers b = buffers(dst, src, s, "to_rank_major");
  for (int64_t p = 0; p < s.parts; ++p)
    copy_rows(b.device, b.dst + static_cast<size_t>(p * s.outer) * b.chunk_bytes, b.chunk_bytes,
              b.src + static_cast<size_t>(p) * b.chunk_bytes, static_cast<size_t>(s.parts) * b.chunk_bytes,
              b.chunk_bytes, s.outer);
}

void from_rank_major(const Tensor& dst, const Tensor& src, const AxisSplit& s) {
  const Buffers b = buffers(dst, src, s, "from_rank_major");
  for (int64_t p = 0; p < s.parts; ++p)
    copy_rows(b.device, b.dst + static_cast<size_t>(p) * b.chunk_bytes, static_cast<size_t>(s.parts) * b.chunk_bytes,
              b.src + static_cast<size_t>(p * s.outer) * b.chunk_bytes, b.chunk_bytes, b.chunk_bytes, s.outer);
}

void copy_part(const Tensor& dst, const Tensor& src, const AxisSplit& s, int64_t part) {
  const Buffers b = buffers(dst, src, s, "copy_part");
  copy_rows(b.device, b.dst, b.chunk_bytes, b.src + static_cast<size_t>(part) * b.chunk_bytes,
            static_cast<size_t>(s.parts) * b.chunk_bytes, b.chunk_bytes, s.outer);
}

}  // namespace meridian::parallel

#include "ops/cuda/strided_copy.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "ops/cuda/kernel_common.cuh"
#include "ops/cuda/launch.cuh"

namespace meridian::ops::cuda {
namespace {

using detail::check_cuda;
using detail::check_launch;

struct View {
  int64_t shape[kMaxStridedDims];
  int64_t strides[kMaxStridedDims];
  int ndim;
};

// The offset (in elements) of the view's element with row-major index i.
__device__ int64_t view_offset(const View& view, int64_t i) {
  int64_t rest = i, offset = 0;
  for (int d = view.ndim - 1; d >= 0; --d) {
    offset += (rest % view.shape[d]) * view.strides[d];
    rest /= view.shape[d];
  }
  return offset;
}

enum class Direction { gather, scatter };

// One thread per element of the view (grid-stride): gather reads the view's element i into dst[i],
// scatter writes src[i] to it. Element is an integer type of the element's width (bits are moved as
// is). A view made by narrow or select never maps two indices to one offset, so the scatter's writes
// do not collide.
template <class Element, Direction kDirection>
__global__ void strided_copy_kernel(Element* __restrict__ dst, const Element* __restrict__ src, View view,
                                    int64_t n) {
  const detail::GridStride walk = detail::grid_stride();
  for (int64_t i = walk.first; i < n; i += walk.step) {
    const int64_t offset = view_offset(view, i);
    if constexpr (kDirection == Direction::gather)
      dst[i] = src[offset];
    else
      dst[offset] = src[i];
  }
}

template <class Element>
void launch(Direction direction, void* dst, const void* src, const View& view, int64_t n, cudaStream_t stream) {
  const auto kernel = direction == Direction::gather ? strided_copy_kernel<Element, Direction::gather>
                                                     : strided_copy_kernel<Element, Direction::scatter>;
  kernel<<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(
      static_cast<Element*>(dst), static_cast<const Element*>(src), view, n);
}

void copy_strided(Direction direction, void* dst, const void* src, const int64_t* shape, const int64_t* strides,
                  int ndim, size_t element_bytes, cudaStream_t stream) {
  const std::string what = direction == Direction::gather ? "gather_strided" : "scatter_strided";
  if (ndim < 0 || ndim > kMaxStridedDims)
    throw std::invalid_argument(what + ": " + std::to_string(ndim) + " dimensions (at most " +
                                std::to_string(kMaxStridedDims) + ")");
  View view{};
  view.ndim = ndim;
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) {
    view.shape[d] = shape[d];
    view.strides[d] = strides[d];
    n *= shape[d];
  }
  if (n == 0) return;
  switch (element_bytes) {
    case 1: launch<uint8_t>(direction, dst, src, view, n, stream); break;
    case 2: launch<uint16_t>(direction, dst, src, view, n, stream); break;
    case 4: launch<uint32_t>(direction, dst, src, view, n, stream); break;
    case 8: launch<uint64_t>(direction, dst, src, view, n, stream); break;
    default: throw std::invalid_argument(what + ": elements of " + std::to_string(element_bytes) + " bytes");
  }
  check_launch(what + " (" + std::to_string(n) + " elements)");
}

}  // namespace

void gather_strided(void* dst, const void* src, const int64_t* shape, const int64_t* strides, int ndim,
                    size_t element_bytes, cudaStream_t stream) {
  copy_strided(Direction::gather, dst, src, shape, strides, ndim, element_bytes, stream);
}

void scatter_strided(void* dst, const void* src, const int64_t* shape, const int64_t* strides, int ndim,
                     size_t element_bytes, cudaStream_t stream) {
  copy_strided(Direction::scatter, dst, src, shape, strides, ndim, element_bytes, stream);
}

void copy_between_devices(void* dst, int dst_device, cudaStream_t dst_stream, const void* src, int src_device,
                          cudaStream_t src_stream, size_t bytes) {
  if (bytes == 0) return;
  const std::string what = "copy from cuda:" + std::to_string(src_device) + " to cuda:" + std::to_string(dst_device);
  check_cuda(cudaStreamSynchronize(src_stream), what + ": waiting for the source");
  check_cuda(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, bytes, dst_stream), what);
  check_cuda(cudaStreamSynchronize(dst_stream), what);
}

}  // namespace meridian::ops::cuda

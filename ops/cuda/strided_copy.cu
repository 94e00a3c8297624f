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

// One thread per element of dst (grid-stride): its row-major index unravelled over the view's shape
// gives the source offset. Element is an integer type of the element's width (bits are moved as is).
template <class Element>
__global__ void gather_strided_kernel(Element* __restrict__ dst, const Element* __restrict__ src, View view,
                                      int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t rest = i, offset = 0;
    for (int d = view.ndim - 1; d >= 0; --d) {
      offset += (rest % view.shape[d]) * view.strides[d];
      rest /= view.shape[d];
    }
    dst[i] = src[offset];
  }
}

template <class Element>
void launch_gather(void* dst, const void* src, const View& view, int64_t n, cudaStream_t stream) {
  gather_strided_kernel<Element><<<launch::grid_stride_blocks(n), launch::kThreadsPerBlock, 0, stream>>>(
      static_cast<Element*>(dst), static_cast<const Element*>(src), view, n);
}

}  // namespace

void gather_strided(void* dst, const void* src, const int64_t* shape, const int64_t* strides, int ndim,
                    size_t element_bytes, cudaStream_t stream) {
  if (ndim < 0 || ndim > kMaxStridedDims)
    throw std::invalid_argument("gather_strided: " + std::to_string(ndim) + " dimensions (at most " +
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
    case 1: launch_gather<uint8_t>(dst, src, view, n, stream); break;
    case 2: launch_gather<uint16_t>(dst, src, view, n, stream); break;
    case 4: launch_gather<uint32_t>(dst, src, view, n, stream); break;
    case 8: launch_gather<uint64_t>(dst, src, view, n, stream); break;
    default: throw std::invalid_argument("gather_strided: elements of " + std::to_string(element_bytes) + " bytes");
  }
  check_launch("gather_strided (" + std::to_string(n) + " elements)");
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

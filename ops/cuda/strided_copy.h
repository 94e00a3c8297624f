#pragma once
// Copies of cuda tensors that are not one dense buffer on one device: a strided view gathered into a
// dense buffer (Tensor::contiguous() and copies from views) or written from one (copies, fills and
// gradient accumulation into views), and buffers moved between two GPUs.
#include <cstddef>
#include <cstdint>

#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

inline constexpr int kMaxStridedDims = 8;

// dst (dense, row-major, Π shape elements of element_bytes) ← the view of `src` with `shape` and
// `strides` (in elements; src already points at the view's first element). element_bytes is 1, 2,
// 4 or 8; at most kMaxStridedDims dimensions. Both on the current device, ordered on `stream`.
void gather_strided(void* dst, const void* src, const int64_t* shape, const int64_t* strides, int ndim,
                    size_t element_bytes, cudaStream_t stream);

// The reverse: the view of `dst` with `shape` and `strides` ← dense `src`. The view must not map two
// of its elements to one address (views made by narrow and select never do).
void scatter_strided(void* dst, const void* src, const int64_t* shape, const int64_t* strides, int ndim,
                     size_t element_bytes, cudaStream_t stream);

// `bytes` from src on GPU src_device to dst on GPU dst_device (cudaMemcpyPeerAsync), synchronous for
// the host: it waits for src_stream first (the values are written) and for dst_stream after (the
// source may be freed and the destination read on return).
void copy_between_devices(void* dst, int dst_device, cudaStream_t dst_stream, const void* src, int src_device,
                          cudaStream_t src_stream, size_t bytes);

}  // namespace meridian::ops::cuda

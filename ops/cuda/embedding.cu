#include "ops/cuda/embedding.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <limits>

#include "core/error.h"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/runtime.h"

namespace meridian::ops::cuda {
namespace {

// A whole table is the slice [0, kAllRows): every id a caller has checked is inside it.
constexpr int64_t kAllRows = std::numeric_limits<int64_t>::max();

// Forward: one block per output row, its 256 threads striding over the C channels (coalesced
// copies; no division per element).
template <class T>
__global__ void embedding_forward_kernel(T* __restrict__ out, const int32_t* __restrict__ ids,
                                         const T* __restrict__ table, int64_t first_row, int64_t rows, int64_t C) {
  const int64_t row = blockIdx.x;
  const int64_t local = static_cast<int64_t>(ids[row]) - first_row;
  const bool in_slice = local >= 0 && local < rows;
  T* dst = out + row * C;
  const T* src = in_slice ? table + local * C : nullptr;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) dst[c] = in_slice ? src[c] : T(0.0f);
}

// Backward without atomics and without sorting the ids. Block (x = 128 channels, y = bucket of
// table rows): the threads of bucket b own the table rows r with r mod kBuckets = b, for their
// channels. Each block walks all N ids in order (staged through shared memory in tiles) and adds the
// dout rows whose id falls in its bucket. So every table element has one owner thread, which adds
// its contributions in increasing i, the CPU kernel's order: race-free, deterministic, and the same
// bits as the CPU. The branch on the id is uniform across the block (no divergence). Cost: each block
// reads all N ids (from L2), which is small next to the N·C gradient it moves.
constexpr int kChannelsPerBlock = 128;
constexpr int kBuckets = 64;
constexpr int kIdTile = 1024;

__global__ void embedding_backward_kernel(float* __restrict__ dtable, const float* __restrict__ dout,
                                          const int32_t* __restrict__ ids, int64_t first_row, int64_t rows, int64_t N,
                                          int64_t C) {
  __shared__ int32_t tile[kIdTile];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kChannelsPerBlock + threadIdx.x;
  const int64_t bucket = blockIdx.y;
  for (int64_t tile_start = 0; tile_start < N; tile_start += kIdTile) {
    const int tile_size = static_cast<int>(N - tile_start < kIdTile ? N - tile_start : kIdTile);
    __syncthreads();  // the previous tile has been read by every thread
    for (int i = threadIdx.x; i < tile_size; i += kChannelsPerBlock) tile[i] = ids[tile_start + i];
    __syncthreads();
    if (c >= C) continue;  // after the barriers: threads past C still help load the tiles
    for (int i = 0; i < tile_size; ++i) {
      const int64_t local = static_cast<int64_t>(tile[i]) - first_row;
      if (local < 0 || local >= rows || local % kBuckets != bucket) continue;
      dtable[local * C + c] += dout[(tile_start + i) * C + c];
    }
  }
}

template <class T>
void launch_forward(T* out, const int32_t* ids, const T* table, int64_t first_row, int64_t rows, int64_t N, int64_t C,
                    cudaStream_t stream, const char* name) {
  if (N == 0 || C == 0) return;
  if (N > std::numeric_limits<int32_t>::max())  // one block per row: gridDim.x is at most 2³¹ − 1
    MERIDIAN_FAIL(name, ": ", N, " rows exceed the grid limit of 2^31 - 1");
  embedding_forward_kernel<T>
      <<<static_cast<unsigned>(N), launch::kThreadsPerBlock, 0, stream>>>(out, ids, table, first_row, rows, C);
  MERIDIAN_CUDA_CHECK_LAUNCH(name);
}

void launch_backward(float* dtable, const float* dout, const int32_t* ids, int64_t first_row, int64_t rows, int64_t N,
                     int64_t C, cudaStream_t stream, const char* name) {
  if (N == 0 || C == 0) return;
  const dim3 grid(static_cast<unsigned>((C + kChannelsPerBlock - 1) / kChannelsPerBlock), kBuckets);
  embedding_backward_kernel<<<grid, kChannelsPerBlock, 0, stream>>>(dtable, dout, ids, first_row, rows, N, C);
  MERIDIAN_CUDA_CHECK_LAUNCH(name);
}

}  // namespace

void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C, cudaStream_t stream) {
  launch_forward(out, ids, table, 0, kAllRows, N, C, stream, "embedding_forward");
}

void embedding_forward(__nv_bfloat16* out, const int32_t* ids, const __nv_bfloat16* table, int64_t N, int64_t C,
                       cudaStream_t stream) {
  launch_forward(out, ids, table, 0, kAllRows, N, C, stream, "embedding_forward");
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C,
                        cudaStream_t stream) {
  launch_backward(dtable, dout, ids, 0, kAllRows, N, C, stream, "embedding_backward");
}

void embedding_slice_forward(float* out, const int32_t* ids, const float* table, int64_t first_row, int64_t rows,
                             int64_t N, int64_t C, cudaStream_t stream) {
  launch_forward(out, ids, table, first_row, rows, N, C, stream, "embedding_slice_forward");
}

void embedding_slice_backward(float* dtable, const float* dout, const int32_t* ids, int64_t first_row, int64_t rows,
                              int64_t N, int64_t C, cudaStream_t stream) {
  launch_backward(dtable, dout, ids, first_row, rows, N, C, stream, "embedding_slice_backward");
}

}  // namespace meridian::ops::cuda

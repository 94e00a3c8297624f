#pragma once
// Launch shapes shared by the elementwise-style kernels (runtime, layernorm, GELU, elementwise,
// embedding, optimizer). Device-side helpers (fp32 ⇄ bf16, warp sums) live in kernel_common.cuh.
#include <algorithm>
#include <cstdint>

namespace meridian::ops::cuda::launch {

// Memory-bound kernels: 256 threads (8 warps) a block keeps enough loads in flight on every SM.
constexpr int kThreadsPerBlock = 256;

// Blocks for a grid-stride loop over n elements: one element per thread when that fits in the cap,
// else the loop covers the rest. The cap (2¹⁶ blocks of 256 = 16 M threads) is far above what an
// H200 keeps resident, so it never limits speed; it only bounds the grid size.
inline unsigned grid_stride_blocks(int64_t n) {
  const int64_t blocks = (n + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 16));
}

// Blocks for a vectorized grid-stride loop (kernel_common.cuh's Vector): a thread per vector of 8.
inline unsigned vector_grid_blocks(int64_t n, bool vectorized) {
  return grid_stride_blocks(vectorized ? (n + 7) / 8 : n);
}

}  // namespace meridian::ops::cuda::launch

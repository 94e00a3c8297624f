// Kernels with and without the races the emulator's race check must report, one per case, for the
// `race` preset's emulated.race_check.* tests: a case with a race passes when ThreadSanitizer reports
// it (naming the kernel's threads), a case without one when it reports nothing.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace {

// Thread 0 of every block writes element 0: nothing orders two blocks.
__global__ void every_block_writes_element_zero(float* out) {
  if (threadIdx.x == 0) out[0] = static_cast<float>(blockIdx.x);
}

// Thread 0 of each block writes the block's own element.
__global__ void each_block_writes_its_element(float* out) {
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<float>(blockIdx.x);
}

// Each thread writes its element of a shared tile and reads its neighbour's, with or without a
// __syncthreads between the two.
template <bool kBarrier>
__global__ void read_neighbour_in_block(float* out) {
  __shared__ float tile[64];
  tile[threadIdx.x] = static_cast<float>(threadIdx.x);
  if (kBarrier) __syncthreads();
  out[threadIdx.x] = tile[(threadIdx.x + 1) % 64];
}

// The same within one warp, ordered by __syncwarp, or only by a shuffle (which orders no memory).
template <bool kSyncwarp>
__global__ void read_neighbour_in_warp(float* out) {
  __shared__ float tile[32];
  tile[threadIdx.x] = static_cast<float>(threadIdx.x);
  float from_lane_zero = 0.f;
  if (kSyncwarp) {
    __syncwarp();
  } else {
    from_lane_zero = __shfl_sync(0xffffffffu, tile[threadIdx.x], 0);
  }
  out[threadIdx.x] = tile[(threadIdx.x + 1) % 32] + 0.f * from_lane_zero;
}

int fail(const char* what, cudaError_t e) {
  std::fprintf(stderr, "race_check: %s failed: %s\n", what, cudaGetErrorString(e));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: race_check <case>\n");
    return 2;
  }
  const char* which = argv[1];
  float* out = nullptr;
  if (cudaError_t e = cudaMalloc(&out, 64 * sizeof(float)); e != cudaSuccess) return fail("cudaMalloc", e);
  if (std::strcmp(which, "blocks_race") == 0) {
    every_block_writes_element_zero<<<4, 32>>>(out);
  } else if (std::strcmp(which, "blocks_apart") == 0) {
    each_block_writes_its_element<<<4, 32>>>(out);
  } else if (std::strcmp(which, "block_without_barrier") == 0) {
    read_neighbour_in_block<false><<<1, 64>>>(out);
  } else if (std::strcmp(which, "block_with_barrier") == 0) {
    read_neighbour_in_block<true><<<1, 64>>>(out);
  } else if (std::strcmp(which, "warp_with_shuffle_only") == 0) {
    read_neighbour_in_warp<false><<<1, 32>>>(out);
  } else if (std::strcmp(which, "warp_with_syncwarp") == 0) {
    read_neighbour_in_warp<true><<<1, 32>>>(out);
  } else {
    std::fprintf(stderr, "race_check: unknown case '%s'\n", which);
    return 2;
  }
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return fail("the launch", e);
  // The host reads what the kernel wrote: ordered after it, as on a GPU.
  std::vector<float> host(64);
  if (cudaError_t e = cudaMemcpy(host.data(), out, host.size() * sizeof(float), cudaMemcpyDeviceToHost);
      e != cudaSuccess)
    return fail("cudaMemcpy", e);
  std::printf("race_check %s: out[0] = %g\n", which, host[0]);
  return cudaFree(out) == cudaSuccess ? 0 : 1;
}

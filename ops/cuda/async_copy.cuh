#pragma once
// Asynchronous copies from global to shared memory (cp.async, sm_80 and newer): a thread issues
// copies that run while it goes on computing, gathers them into groups (commit_async_copies), and
// waits for all but the newest N groups (wait_async_copies<N>) before it reads what they wrote. The
// copies hold no registers in flight, so a kernel can load the next tile during this tile's products
// at no cost in occupancy. What a thread waited for is visible to the other threads of its block
// after the next __syncthreads.
#include <cuda_runtime.h>

#include <cstdint>

#if !defined(__CUDACC__)
// The host emulation (tests/cuda_emulation/include) runs each copy when its thread waits for it (or,
// with EMU_REVERSE, when it is issued), so reading too early, or overwriting what another thread still
// reads, shows as a wrong result.
#include "emu_async_copy.h"
#endif

namespace meridian::ops::cuda::detail {

// kBytes (16 or 4) from global `source` to shared `target` (both kBytes-aligned), or kBytes zero bytes
// when !valid (source is then not read, but must still be a valid address). 16-byte copies go through
// L2 only (cg: the data is read once per block); cg takes 16 bytes only, so 4-byte copies use ca.
template <int kBytes>
__device__ __forceinline__ void copy_async(void* target, const void* source, bool valid) {
  static_assert(kBytes == 16 || kBytes == 4, "cp.async copies 16 or 4 bytes here");
#if defined(__CUDACC__)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(target));
  if constexpr (kBytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(source), "r"(valid ? 16 : 0));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(address), "l"(source), "r"(valid ? 4 : 0));
  }
#else
  __trap();
#endif
#else
  ::emu::copy_async(target, source, kBytes, valid ? kBytes : 0);
#endif
}

// Closes the group of the calling thread's copies issued since the last commit.
__device__ __forceinline__ void commit_async_copies() {
#if defined(__CUDACC__)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
#else
  ::emu::commit_async_copies();
#endif
}

// Waits until at most `kPending` of the calling thread's committed groups, the newest, are still running.
template <int kPending>
__device__ __forceinline__ void wait_async_copies() {
#if defined(__CUDACC__)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
#else
  ::emu::wait_async_copies(kPending);
#endif
}

}  // namespace meridian::ops::cuda::detail

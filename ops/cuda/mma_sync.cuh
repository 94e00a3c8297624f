#pragma once
// One warp-wide bf16 tensor-core product, mma.sync.m16n8k16 (sm_80 and newer), with its register
// fragments spelled out. Unlike WMMA, whose fragment layout is opaque, this layout is documented
// (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"), so a kernel can run a
// softmax on an accumulator in registers and feed it back as the next product's A operand.
//
// Lane l of the warp, g = l / 4 (its group), t = l % 4 (its place in the group). Each 32-bit A or B
// register holds two bf16 of consecutive k, the lower k in the low half.
//   A (16 × 16, m × k): a[0] = A[g][2t, 2t+1]   a[1] = A[g+8][2t, 2t+1]
//                       a[2] = A[g][2t+8, 2t+9] a[3] = A[g+8][2t+8, 2t+9]
//   B (16 × 8,  k × n): b[0] = B[2t, 2t+1][g]   b[1] = B[2t+8, 2t+9][g]
//   C, D (16 × 8, fp32): c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// So the accumulators of two 16 × 8 tiles side by side (n = 0…7 and 8…15), rounded to bf16 in
// pairs, are exactly the A fragment of the 16 × 16 block they form (a_fragment_from_accumulators).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#if !defined(__CUDACC__)
// The host emulation (tests/cuda_emulation/include) implements the instructions from the layouts here.
#include "emu_mma_sync.h"
#endif

namespace meridian::ops::cuda::detail {

// d += A · B for one m16n8k16 tile, fp32 accumulation.
#if defined(__CUDACC__)
__device__ __forceinline__ void mma_bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // built only for sm_80 and newer; an older target never runs the flash kernels
#endif
}
#else
using ::emu::mma_bf16_m16n8k16;
#endif

// Two floats rounded to bf16 and packed into one register, `low` in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float low, float high) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(low))) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(high))) << 16);
}

__device__ __forceinline__ float low_bf16(uint32_t pair) { return __uint_as_float(pair << 16); }
__device__ __forceinline__ float high_bf16(uint32_t pair) { return __uint_as_float(pair & 0xffff0000u); }

// Two consecutive bf16 of shared or global memory (4-byte aligned) as one register.
__device__ __forceinline__ uint32_t load_pair(const __nv_bfloat16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// The A fragment of rows m0 … m0 + 15, columns k0 … k0 + 15 of a row-major bf16 matrix (ld elements
// per row; m0, k0 and ld even).
__device__ __forceinline__ void load_a_fragment(uint32_t (&a)[4], const __nv_bfloat16* matrix, int ld, int m0, int k0,
                                                int lane) {
  const int g = lane / 4, t = lane % 4;
  const __nv_bfloat16* row = matrix + (m0 + g) * ld + k0 + 2 * t;
  a[0] = load_pair(row);
  a[1] = load_pair(row + 8 * ld);
  a[2] = load_pair(row + 8);
  a[3] = load_pair(row + 8 * ld + 8);
}

// The B fragment (k0 … k0 + 15) × (n0 … n0 + 7) of B = Mᵀ, M row-major (n along its rows, k along
// its columns): b[i] holds M[n0 + g][k0 + 2t + 8i, +1], two consecutive elements of one row.
__device__ __forceinline__ void load_b_fragment_transposed(uint32_t (&b)[2], const __nv_bfloat16* matrix, int ld,
                                                           int n0, int k0, int lane) {
  const int g = lane / 4, t = lane % 4;
  const __nv_bfloat16* row = matrix + (n0 + g) * ld + k0 + 2 * t;
  b[0] = load_pair(row);
  b[1] = load_pair(row + 8);
}

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: lane l names row l % 8 of 8 × 8 block l / 8
// (`row`: 16-byte aligned shared memory); register m of lane (g, t) receives elements 2t, 2t + 1 of
// row g of block m, or with kTranspose elements g of rows 2t and 2t + 1. Registers 0…3 land in
// d[0][0], d[0][1], d[1][0], d[1][1].
template <bool kTranspose>
__device__ __forceinline__ void load_matrices_x4(uint32_t (&d)[2][2], const __nv_bfloat16* row) {
#if defined(__CUDACC__)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  if constexpr (kTranspose) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(d[0][0]), "=r"(d[0][1]), "=r"(d[1][0]), "=r"(d[1][1])
                 : "r"(address));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(d[0][0]), "=r"(d[0][1]), "=r"(d[1][0]), "=r"(d[1][1])
                 : "r"(address));
  }
#else
  __trap();
#endif
#else
  if constexpr (kTranspose) {
    ::emu::ldmatrix_x4_trans(d, row);
  } else {
    ::emu::ldmatrix_x4(d, row);
  }
#endif
}

// The B fragments of two adjacent 16 × 8 tiles of B = Mᵀ, k0 … k0 + 15 × n0 … n0 + 15, M row-major in shared
// memory (n along its rows; ld elements per row, rows 16-byte aligned, k0 a multiple of 8): b[0] for
// n0 … n0 + 7, b[1] for n0 + 8 … n0 + 15, each as load_b_fragment_transposed gives it, from one
// ldmatrix.x4 instead of four 32-bit loads. The four 8 × 8 blocks of M are (n0, k0), (n0, k0 + 8),
// (n0 + 8, k0) and (n0 + 8, k0 + 8), lane l naming row l % 8 of block l / 8; lane (g, t) receives
// M[row g][2t, 2t+1] of each block, which is b[i][j] = M[n0 + 8i + g][k0 + 8j + 2t, +1].
__device__ __forceinline__ void load_b_fragments_transposed(uint32_t (&b)[2][2], const __nv_bfloat16* matrix, int ld,
                                                            int n0, int k0, int lane) {
  load_matrices_x4<false>(b, matrix + (n0 + lane % 8 + 8 * (lane / 16)) * ld + k0 + 8 * ((lane / 8) % 2));
}

// The B fragments of two adjacent 16 × 8 tiles, k0 … k0 + 15 × n0 … n0 + 15, of a row-major bf16 matrix B
// in shared memory (k along its rows; ld elements per row, rows 16-byte aligned, n0 a multiple of 8):
// b[0] for columns n0 … n0 + 7, b[1] for n0 + 8 … n0 + 15. A fragment register holds two consecutive k
// of one column, which are a row apart here, so one ldmatrix.x4.trans reads four 8 × 8 blocks of rows,
// (k0, n0), (k0 + 8, n0), (k0, n0 + 8) and (k0 + 8, n0 + 8), lane l naming row l % 8 of block l / 8,
// and hands each lane its elements transposed: lane (g, t) receives B[2t, 2t+1][g] of each block.
__device__ __forceinline__ void load_b_fragments_from_rows(uint32_t (&b)[2][2], const __nv_bfloat16* matrix, int ld,
                                                           int k0, int n0, int lane) {
  load_matrices_x4<true>(b, matrix + (k0 + lane % 8 + 8 * ((lane / 8) % 2)) * ld + n0 + 8 * (lane / 16));
}

// The A fragment of the 16 × 16 block formed by two 16 × 8 accumulator tiles (left: n = 0…7, right:
// n = 8…15), rounded to bf16.
__device__ __forceinline__ void a_fragment_from_accumulators(uint32_t (&a)[4], const float (&left)[4],
                                                             const float (&right)[4]) {
  a[0] = pack_bf16(left[0], left[1]);
  a[1] = pack_bf16(left[2], left[3]);
  a[2] = pack_bf16(right[0], right[1]);
  a[3] = pack_bf16(right[2], right[3]);
}

}  // namespace meridian::ops::cuda::detail

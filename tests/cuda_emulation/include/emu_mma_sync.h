#pragma once
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 on the host, from the fragment layout of the PTX
// ISA (written out in ops/cuda/mma_sync.cuh): the warp's lanes meet, publish their A and B registers, and
// each lane computes its own four accumulators from the whole 16 × 16 A and 16 × 8 B. The sum runs over k
// in order in fp32 (tensor cores add in another order: within the bf16 tolerance of the tests).
// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16 likewise: the lanes publish the row addresses they name,
// and each lane reads its elements through those rows.
#include <utility>

#include "emu_cuda.h"

namespace emu {

inline float emu_bf16_half(uint32_t pair, int high) { return __uint_as_float(high ? pair & 0xffff0000u : pair << 16); }

// A[m][k] from the published registers: lane (m % 8)·4 + (k % 8)/2, register (m ≥ 8) + 2·(k ≥ 8).
inline float emu_mma_a(const Warp& w, int m, int k) {
  return emu_bf16_half(exchange_load(w.mma_operands[(m % 8) * 4 + (k % 8) / 2][(m >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)]),
                       k % 2);
}
// B[k][n]: lane n·4 + (k % 8)/2, register 4 + (k ≥ 8).
inline float emu_mma_b(const Warp& w, int k, int n) {
  return emu_bf16_half(exchange_load(w.mma_operands[n * 4 + (k % 8) / 2][4 + (k >= 8 ? 1 : 0)]), k % 2);
}

inline void mma_bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  Warp& w = my_warp();
  const unsigned l = lane();
  warp_sync("mma.sync", 0xffffffffu);  // every lane has finished reading the previous product's operands
  for (int i = 0; i < 4; ++i) exchange_store(w.mma_operands[l][i], a[i]);
  for (int i = 0; i < 2; ++i) exchange_store(w.mma_operands[l][4 + i], b[i]);
  warp_sync("mma.sync", 0xffffffffu);
  const int g = static_cast<int>(l / 4), t = static_cast<int>(l % 4);
  for (int i = 0; i < 4; ++i) {
    const int m = g + (i >= 2 ? 8 : 0), n = 2 * t + i % 2;
    float sum = d[i];
    for (int k = 0; k < 16; ++k) sum += emu_mma_a(w, m, k) * emu_mma_b(w, k, n);
    d[i] = sum;
  }
}

// ldmatrix.x4: lane l names row l % 8 of 8 × 8 block l / 8 (8 bf16, 16-byte aligned, in shared memory), and
// register m of every lane receives two elements of block m; `pick(block_rows, g, t)` forms them (a
// block's row pointers in order), as the variant defines.
template <class Pick>
void ldmatrix_x4(uint32_t (&d)[2][2], const __nv_bfloat16* row, Pick pick) {
  Warp& w = my_warp();
  const unsigned l = lane();
  if (reinterpret_cast<uintptr_t>(row) % 16 != 0) warn("ldmatrix: a row address is not 16-byte aligned");
  if (is_device_pointer(row)) warn("ldmatrix: a row address is global memory, not shared");
  warp_sync("ldmatrix", 0xffffffffu);  // every lane has finished reading the previous load's addresses
  exchange_store(w.xchg[l], static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(row)));
  warp_sync("ldmatrix", 0xffffffffu);
  const unsigned g = l / 4, t = l % 4;
  for (unsigned m = 0; m < 4; ++m) {
    const __nv_bfloat16* block_rows[8];
    for (unsigned r = 0; r < 8; ++r)
      block_rows[r] = reinterpret_cast<const __nv_bfloat16*>(exchange_load(w.xchg[8 * m + r]));
    const auto [low, high] = pick(block_rows, g, t);
    d[m / 2][m % 2] =
        static_cast<uint32_t>(__bfloat16_as_ushort(low)) | (static_cast<uint32_t>(__bfloat16_as_ushort(high)) << 16);
  }
}

// As stored: lane (g, t) receives elements 2t and 2t + 1 of row g of each block.
inline void ldmatrix_x4(uint32_t (&d)[2][2], const __nv_bfloat16* row) {
  ldmatrix_x4(d, row, [](const __nv_bfloat16* const* rows, unsigned g, unsigned t) {
    return std::pair{rows[g][2 * t], rows[g][2 * t + 1]};
  });
}

// .trans: lane (g, t) receives elements g of rows 2t and 2t + 1 of each block (the block transposed).
inline void ldmatrix_x4_trans(uint32_t (&d)[2][2], const __nv_bfloat16* row) {
  ldmatrix_x4(d, row, [](const __nv_bfloat16* const* rows, unsigned g, unsigned t) {
    return std::pair{rows[2 * t][g], rows[2 * t + 1][g]};
  });
}

}  // namespace emu

#pragma once
// WMMA as whole-matrix operations per lane (fragment layout is opaque): every lane holds the full tile.
#include "emu_cuda.h"
namespace nvcuda::wmma {
struct matrix_a {}; struct matrix_b {}; struct accumulator {}; struct row_major {}; struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment { float x[16][16]; };
inline void check_ptr(const void* p, unsigned ldm, size_t elem, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) { std::fprintf(stderr, "EMU WMMA %s: pointer %p not 32-byte aligned\n", what, p); std::abort(); }
  if ((ldm * elem) % 16 != 0) { std::fprintf(stderr, "EMU WMMA %s: ldm %u bad\n", what, ldm); std::abort(); }
}
inline void check_shared_range(const void* lo, const void* hi_exclusive) {
  auto s = (uintptr_t)emu::dyn_shared(), e = s + emu::cur->block->dyn_bytes;
  auto a = (uintptr_t)lo, b = (uintptr_t)hi_exclusive;
  if (a >= s && a < e) {
    if (b > e) { std::fprintf(stderr, "EMU WMMA access past shared end by %zu bytes\n", (size_t)(b - e)); std::abort(); }
  } else { std::fprintf(stderr, "EMU WMMA access outside dynamic shared memory (global operand: unchecked)\n"); }
}
template <class Use, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout>& f, const __nv_bfloat16* p, unsigned ldm) {
  check_ptr(p, ldm, 2, "load bf16");
  constexpr bool row = std::is_same_v<Layout, row_major>;
  check_shared_range(p, p + 15 * ldm + 16);
  emu::warp_sync("wmma::load_matrix_sync", 0xffffffffu);
  for (int i = 0; i < 16; ++i) for (int j = 0; j < 16; ++j)
    f.x[i][j] = __bfloat162float(row ? p[i * ldm + j] : p[i + j * ldm]);
  emu::warp_sync("wmma::load_matrix_sync", 0xffffffffu);
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float, void>& f, const float* p, unsigned ldm, layout_t l) {
  check_ptr(p, ldm, 4, "load f32");
  check_shared_range(p, p + 15 * ldm + 16);
  emu::warp_sync("wmma::load_matrix_sync", 0xffffffffu);
  for (int i = 0; i < 16; ++i) for (int j = 0; j < 16; ++j) f.x[i][j] = l == mem_row_major ? p[i * ldm + j] : p[i + j * ldm];
  emu::warp_sync("wmma::load_matrix_sync", 0xffffffffu);
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float, void>& f, unsigned ldm, layout_t l) {
  check_ptr(p, ldm, 4, "store f32");
  check_shared_range(p, p + 15 * ldm + 16);
  emu::warp_sync("wmma::store_matrix_sync", 0xffffffffu);  // collective: the warp arrives together
  const int lane = static_cast<int>(emu::lane());  // each lane writes its share, as on hardware
  for (int e = lane; e < 256; e += 32) {
    const int i = e / 16, j = e % 16;
    (l == mem_row_major ? p[i * ldm + j] : p[i + j * ldm]) = f.x[i][j];
  }
}
template <class T, class L>
void fill_fragment(fragment<accumulator, 16, 16, 16, T, L>& f, float v) { for (auto& r : f.x) for (auto& e : r) e = v; }
template <class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float, void>& d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA>& a,
              const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB>& b, const fragment<accumulator, 16, 16, 16, float, void>& c) {
  emu::warp_sync("wmma::mma_sync", 0xffffffffu);
  float r[16][16];
  for (int i = 0; i < 16; ++i) for (int j = 0; j < 16; ++j) {
    float s = c.x[i][j];
    for (int k = 0; k < 16; ++k) s += a.x[i][k] * b.x[k][j];
    r[i][j] = s;
  }
  std::memcpy(d.x, r, sizeof r);
}
}  // namespace nvcuda::wmma

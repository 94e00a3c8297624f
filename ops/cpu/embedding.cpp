#include "ops/cpu/embedding.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "ops/cpu/parallel.h"

namespace meridian::ops::cpu {

namespace {
bool in_slice(int32_t id, int64_t first_row, int64_t rows) { return id >= first_row && id < first_row + rows; }
}  // namespace

void embedding_slice_forward(float* out, const int32_t* ids, const float* table, int64_t first_row, int64_t rows,
                             int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C >= kParallelElements)
  for (int64_t row = 0; row < N; ++row) {
    float* dst = out + row * C;
    if (in_slice(ids[row], first_row, rows))
      std::memcpy(dst, table + (ids[row] - first_row) * C, static_cast<size_t>(C) * sizeof(float));
    else
      std::fill(dst, dst + C, 0.0f);
  }
}

void embedding_slice_backward(float* dtable, const float* dout, const int32_t* ids, int64_t first_row,
                              int64_t rows, int64_t N, int64_t C) {
  // Repeated ids make a row-parallel scatter race. Instead each iteration owns a slice of channels
  // of every table row and walks all N rows in order: race-free, no atomics, and the sum order (and
  // so the result) does not depend on the thread count.
  constexpr int64_t kChannelsPerSlice = 64;
  const int64_t slices = (C + kChannelsPerSlice - 1) / kChannelsPerSlice;
#pragma omp parallel for schedule(static) if (N * C >= kParallelElements)
  for (int64_t slice = 0; slice < slices; ++slice) {
    const int64_t begin = slice * kChannelsPerSlice;
    const int64_t width = std::min(kChannelsPerSlice, C - begin);
    for (int64_t row = 0; row < N; ++row) {
      if (!in_slice(ids[row], first_row, rows)) continue;
      float* __restrict__ dst = dtable + (ids[row] - first_row) * C + begin;
      const float* __restrict__ src = dout + row * C + begin;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) dst[c] += src[c];
    }
  }
}

// The whole table is the slice that starts at row 0 and admits every (checked, non-negative) id.
constexpr int64_t kWholeTable = std::numeric_limits<int64_t>::max();

void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C) {
  embedding_slice_forward(out, ids, table, 0, kWholeTable, N, C);
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C) {
  embedding_slice_backward(dtable, dout, ids, 0, kWholeTable, N, C);
}

}  // namespace meridian::ops::cpu

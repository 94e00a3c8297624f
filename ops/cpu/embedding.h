#pragma once
#include <cstdint>

namespace meridian::ops::cpu {

// out[i, :] = table[ids[i], :] for N rows of C. Callers check ids against the table's rows.
void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C);
// dtable[ids[i], :] += dout[i, :] (deterministic for a given thread count; repeated ids are summed)
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C);

// A table that holds only rows [first_row, first_row + rows) of a larger one (a vocabulary-parallel
// slice): out[i, :] = table[ids[i] − first_row, :] for ids in the slice, zeros for any other id.
void embedding_slice_forward(float* out, const int32_t* ids, const float* table, int64_t first_row, int64_t rows,
                             int64_t N, int64_t C);
// dtable[ids[i] − first_row, :] += dout[i, :] for ids in the slice; other ids contribute nothing.
void embedding_slice_backward(float* dtable, const float* dout, const int32_t* ids, int64_t first_row,
                              int64_t rows, int64_t N, int64_t C);

}  // namespace meridian::ops::cpu

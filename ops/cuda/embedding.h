#pragma once
// CUDA twins of ops/cpu/embedding.h: the same arguments plus the stream. Device pointers (ids too);
// plain C++ can include this header.
#include <cstdint>

#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

// out[i, :] = table[ids[i], :] for N rows of C. Callers check ids against the table's rows.
void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C, cudaStream_t stream);
void embedding_forward(__nv_bfloat16* out, const int32_t* ids, const __nv_bfloat16* table, int64_t N, int64_t C,
                       cudaStream_t stream);

// dtable[ids[i], :] += dout[i, :]; repeated ids are summed. Deterministic and bit-identical to the CPU
// kernel: every table element is updated by one thread, adding its rows in increasing i (no atomics).
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C,
                        cudaStream_t stream);

// A table that holds only rows [first_row, first_row + rows) of a larger one (a vocabulary-parallel
// slice): out[i, :] = table[ids[i] − first_row, :] for ids in the slice, zeros for any other id.
void embedding_slice_forward(float* out, const int32_t* ids, const float* table, int64_t first_row, int64_t rows,
                             int64_t N, int64_t C, cudaStream_t stream);
// dtable[ids[i] − first_row, :] += dout[i, :] for ids in the slice; other ids contribute nothing.
void embedding_slice_backward(float* dtable, const float* dout, const int32_t* ids, int64_t first_row, int64_t rows,
                              int64_t N, int64_t C, cudaStream_t stream);

}  // namespace meridian::ops::cuda

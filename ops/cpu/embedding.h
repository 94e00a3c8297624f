#pragma once
#include <cstdint>

namespace meridian::ops::cpu {

// out[i, :] = table[ids[i], :] for N rows of C. Callers check ids against the table's rows.
void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C);
// dtable[ids[i], :] += dout[i, :] (deterministic for a given thread count; repeated ids are summed)
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C);

}  // namespace meridian::ops::cpu

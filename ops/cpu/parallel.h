#pragma once
// Threading for CPU kernels: OpenMP, the same runtime oneDNN uses, so both share one thread pool.
#include <cstdint>

namespace meridian::ops::cpu {

// Below this many elements a memory-bound loop runs on one thread (fork/join costs more).
inline constexpr int64_t kParallelElements = 1 << 15;

void set_num_threads(int threads);  // also caps oneDNN, which follows OpenMP
int num_threads();

}  // namespace meridian::ops::cpu

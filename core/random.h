#pragma once
// Counter-based random numbers: a value depends only on (key, index), never on call order or on how
// the work is split across threads or ranks. This is what makes initialisation layout-independent.
#include <array>
#include <cstdint>
#include <string_view>

namespace meridian::random {

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// The key of one named stream (a parameter's name, "sample", "shuffle", ...) under a seed.
uint64_t stream_key(uint64_t seed, std::string_view name);

float uniform(uint64_t key, uint64_t index);  // in [0, 1)
float normal(uint64_t key, uint64_t index);   // standard normal

// out[i] = mean + std * normal(key, first_index + i), in parallel.
void fill_normal(float* out, int64_t n, uint64_t key, uint64_t first_index, float mean, float std);

}  // namespace meridian::random

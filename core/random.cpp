#include "core/random.h"

#include <cmath>

namespace meridian::random {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

uint64_t stream_key(uint64_t seed, std::string_view name) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a
  for (char ch : name) {
    hash ^= static_cast<unsigned char>(ch);
    hash *= 0x100000001b3ull;
  }
  // splitmix64 finaliser on the combination, so nearby seeds give unrelated keys.
  uint64_t z = seed * 0x9E3779B97F4A7C15ull ^ hash;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

namespace {

std::array<uint32_t, 4> block(uint64_t key, uint64_t counter) {
  return philox4x32({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u},
                    {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)});
}

constexpr double kTwoPi = 6.283185307179586476925286766559;

// Box-Muller on one Philox block gives two normals: element 2k takes the cosine, 2k+1 the sine.
float box_muller(const std::array<uint32_t, 4>& bits, bool sine) {
  const uint64_t a = (static_cast<uint64_t>(bits[0]) << 21) ^ (bits[1] >> 11);  // 53 bits
  const uint64_t b = (static_cast<uint64_t>(bits[2]) << 21) ^ (bits[3] >> 11);
  const double u1 = (static_cast<double>(a & ((1ull << 53) - 1)) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(b & ((1ull << 53) - 1)) * 0x1.0p-53;          // [0, 1)
  const double radius = std::sqrt(-2.0 * std::log(u1));
  return static_cast<float>(radius * (sine ? std::sin(kTwoPi * u2) : std::cos(kTwoPi * u2)));
}

}  // namespace

float uniform(uint64_t key, uint64_t index) {
  return static_cast<float>(block(key, index)[0] >> 8) * 0x1.0p-24f;
}

float normal(uint64_t key, uint64_t index) {
  return box_muller(block(key, index >> 1), (index & 1u) != 0);
}

void fill_normal(float* out, int64_t n, uint64_t key, uint64_t first_index, float mean, float std) {
#pragma omp parallel for schedule(static) if (n > 4096)
  for (int64_t i = 0; i < n; ++i)
    out[i] = mean + std * normal(key, first_index + static_cast<uint64_t>(i));
}

}  // namespace meridian::random

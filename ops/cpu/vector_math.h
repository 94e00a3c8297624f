#pragma once
// Transcendentals that vectorize. Without -ffast-math, glibc exposes no SIMD variant of expf, so a
// loop that calls std::exp runs one element at a time; these branch-free versions let the softmax,
// cross-entropy and GELU loops use full vector width. Accuracy is within a few ulp of std::exp.
#include <bit>
#include <cmath>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

namespace meridian::ops::cpu {

// e^x for finite x. Inputs are clamped to [-87, 88] so the result stays a normal float: below -87 it
// returns ≈1.6e-38 instead of a denormal or 0 (negligible next to any softmax denominator ≥ 1).
inline float simd_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  // ln 2 split in two (Cody–Waite) so that x − n·ln2 stays exact for |n| ≤ 128.
  constexpr float kLn2High = 0.693359375f;
  constexpr float kLn2Low = -2.12194440e-4f;
  // Adding then subtracting 1.5·2²³ rounds to the nearest integer in the current rounding mode,
  // without a call the vectorizer cannot see through.
  constexpr float kRoundingShift = 12582912.0f;
  // Ternaries, not std::clamp: GCC turns the reference-returning clamp into masked blends.
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = (x * kLog2e + kRoundingShift) - kRoundingShift;
  const float r = (x - n * kLn2High) - n * kLn2Low;
  // Cephes expf polynomial for e^r − 1 − r on [−ln2/2, ln2/2].
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e_r = p * r * r + r + 1.0f;
  const auto exponent_bits = static_cast<int32_t>(static_cast<int32_t>(n) + 127) << 23;
  return e_r * std::bit_cast<float>(exponent_bits);
}

// max(initial, x[0], …, x[n−1]). Written as a ternary: GCC does not vectorize a reduction through
// std::max, which returns a reference.
inline float simd_max(const float* __restrict__ x, int64_t n, float initial) {
  float result = initial;
#pragma omp simd reduction(max : result)
  for (int64_t i = 0; i < n; ++i) result = x[i] > result ? x[i] : result;
  return result;
}

// 1 / (1 + e^−x), computed without cancellation at either tail.
inline float simd_sigmoid(float x) { return 1.0f / (1.0f + simd_exp(-x)); }

// A register of floats for loops the compiler will not vectorize by itself: under the default
// -fmath-errno, std::sqrt is a call that may set errno, which blocks vectorization (AdamW). GCC and
// Clang give these types + − × ÷ with each other and with scalars; only loads, stores and sqrt need
// intrinsics. Without AVX the "register" is one float and the same code runs scalar.
#if defined(__AVX512F__)
using FloatLanes = __m512;
inline constexpr int64_t kFloatLanes = 16;
inline FloatLanes load_lanes(const float* source) { return _mm512_loadu_ps(source); }
inline void store_lanes(float* destination, FloatLanes value) { _mm512_storeu_ps(destination, value); }
// The zero-masking form with a full mask: the plain _mm512_sqrt_ps trips GCC 12's
// -Wmaybe-uninitialized inside its own header.
inline FloatLanes sqrt_lanes(FloatLanes value) { return _mm512_maskz_sqrt_ps(__mmask16{0xFFFF}, value); }
#elif defined(__AVX__)
using FloatLanes = __m256;
inline constexpr int64_t kFloatLanes = 8;
inline FloatLanes load_lanes(const float* source) { return _mm256_loadu_ps(source); }
inline void store_lanes(float* destination, FloatLanes value) { _mm256_storeu_ps(destination, value); }
inline FloatLanes sqrt_lanes(FloatLanes value) { return _mm256_sqrt_ps(value); }
#else
using FloatLanes = float;
inline constexpr int64_t kFloatLanes = 1;
inline FloatLanes load_lanes(const float* source) { return *source; }
inline void store_lanes(float* destination, FloatLanes value) { *destination = value; }
#endif
// Correctly rounded in every lane, like std::sqrt (so vector and scalar tails agree bit for bit).
inline float sqrt_lanes(float value) { return std::sqrt(value); }

}  // namespace meridian::ops::cpu

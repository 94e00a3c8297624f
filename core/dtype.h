#pragma once
// Element types and their conversions. Storage types (bf16, f16, u16) convert to f32 for compute.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace meridian {

enum class DType : uint8_t { f32, bf16, f16, i32, u16 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
DType parse_dtype(std::string_view name);  // "f32", "bf16", ...; throws on anything else

// bfloat16: the top 16 bits of an IEEE float32, rounded to nearest even.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float value) : bits(from_float(value)) {}
  explicit operator float() const {
    uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float out;
    std::memcpy(&out, &wide, sizeof(out));
    return out;
  }
  static uint16_t from_float(float value) {
    uint32_t wide;
    std::memcpy(&wide, &value, sizeof(wide));
    if ((wide & 0x7f800000u) == 0x7f800000u && (wide & 0x007fffffu) != 0)
      return static_cast<uint16_t>((wide >> 16) | 0x0040u);  // keep NaN a quiet NaN
    uint32_t rounding = 0x7fffu + ((wide >> 16) & 1u);
    return static_cast<uint16_t>((wide + rounding) >> 16);
  }
};

// IEEE binary16.
struct f16 {
  uint16_t bits = 0;
  f16() = default;
  explicit f16(float value) : bits(from_float(value)) {}
  explicit operator float() const { return to_float(bits); }
  static uint16_t from_float(float value);
  static float to_float(uint16_t bits);
};

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::f32; }
template <>
constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <>
constexpr DType dtype_of<f16>() { return DType::f16; }
template <>
constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <>
constexpr DType dtype_of<uint16_t>() { return DType::u16; }

// Converts n elements between any two dtypes (integer targets truncate toward zero).
void convert_elements(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n);

}  // namespace meridian

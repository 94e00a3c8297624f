#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace meridian {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
    case DType::i32:
      return 4;
    case DType::bf16:
    case DType::f16:
    case DType::u16:
      return 2;
  }
  MERIDIAN_FAIL("unknown dtype ", static_cast<int>(dtype));
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::u16: return "u16";
  }
  return "unknown";
}

DType parse_dtype(std::string_view name) {
  for (DType d : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::u16})
    if (dtype_name(d) == name) return d;
  MERIDIAN_FAIL("unknown dtype '", name, "' (expected f32, bf16, f16, i32 or u16)");
}

uint16_t f16::from_float(float value) {
  uint32_t x;
  std::memcpy(&x, &value, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u)  // inf or NaN
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflows to inf
  if (abs < 0x38800000u) {  // subnormal or zero in half precision
    float magnitude;
    std::memcpy(&magnitude, &abs, sizeof(magnitude));
    // Scale so that half subnormal units land on integers, then round to nearest even.
    const float scaled = magnitude * 16777216.0f;  // 2^24
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
  }
  const uint32_t rounded = abs + 0x0fffu + ((abs >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

float f16::to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  float out;
  if (exponent == 0) {
    out = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -out : out;
  }
  uint32_t wide = exponent == 31 ? (sign | 0x7f800000u | (mantissa << 13))
                                 : (sign | ((exponent + 112u) << 23) | (mantissa << 13));
  std::memcpy(&out, &wide, sizeof(out));
  return out;
}

namespace {

float load_as_float(const void* src, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::f32: return static_cast<const float*>(src)[i];
    case DType::bf16: return static_cast<float>(static_cast<const bf16*>(src)[i]);
    case DType::f16: return static_cast<float>(static_cast<const f16*>(src)[i]);
    case DType::i32: return static_cast<float>(static_cast<const int32_t*>(src)[i]);
    case DType::u16: return static_cast<float>(static_cast<const uint16_t*>(src)[i]);
  }
  return 0.0f;
}

void store_from_float(void* dst, DType dtype, int64_t i, float value) {
  switch (dtype) {
    case DType::f32: static_cast<float*>(dst)[i] = value; return;
    case DType::bf16: static_cast<bf16*>(dst)[i] = bf16(value); return;
    case DType::f16: static_cast<f16*>(dst)[i] = f16(value); return;
    case DType::i32: static_cast<int32_t*>(dst)[i] = static_cast<int32_t>(value); return;
    case DType::u16: static_cast<uint16_t*>(dst)[i] = static_cast<uint16_t>(value); return;
  }
}

}  // namespace

void convert_elements(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n) {
  if (n <= 0) return;  // empty tensors may have null data
  if (dst_dtype == src_dtype) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(dst_dtype));
    return;
  }
  // Integer to integer goes exactly, without a float round trip.
  if (src_dtype == DType::u16 && dst_dtype == DType::i32) {
    for (int64_t i = 0; i < n; ++i)
      static_cast<int32_t*>(dst)[i] = static_cast<const uint16_t*>(src)[i];
    return;
  }
  if (src_dtype == DType::i32 && dst_dtype == DType::u16) {
    for (int64_t i = 0; i < n; ++i)
      static_cast<uint16_t*>(dst)[i] = static_cast<uint16_t>(static_cast<const int32_t*>(src)[i]);
    return;
  }
  // The mixed-precision pair gets loops the compiler vectorises (the cpu's bf16 path converts every
  // bf16 operand and output; docs/mixed_precision.md).
  if (src_dtype == DType::f32 && dst_dtype == DType::bf16) {
    const auto* in = static_cast<const float*>(src);
    auto* out = static_cast<uint16_t*>(dst);
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) out[i] = bf16::from_float(in[i]);
    return;
  }
  if (src_dtype == DType::bf16 && dst_dtype == DType::f32) {
    const auto* in = static_cast<const uint16_t*>(src);
    auto* out = static_cast<uint32_t*>(dst);  // the same bits as the float
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(in[i]) << 16;
    return;
  }
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) store_from_float(dst, dst_dtype, i, load_as_float(src, src_dtype, i));
}

}  // namespace meridian

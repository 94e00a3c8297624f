#pragma once
// Shared helpers for the CUDA kernel tests: skip cleanly without a GPU, device buffers, copies,
// poisoned outputs, and per-dtype tolerances. Every CUDA kernel is compared with its CPU twin
// (ops/cpu) on the same random inputs of awkward sizes.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ops/cuda/device.h"

namespace meridian::ops::cuda::testing {

// Skips the test, saying why, when no GPU is visible (CI has none).
#define MERIDIAN_REQUIRE_CUDA_DEVICE()                                                           \
  do {                                                                                           \
    if (::meridian::ops::cuda::device_count() == 0)                                              \
      GTEST_SKIP() << "no GPU: " << ::meridian::ops::cuda::unavailable_reason();                 \
  } while (0)

#define MERIDIAN_TEST_CUDA(call)                                                                 \
  do {                                                                                           \
    const cudaError_t status_ = (call);                                                          \
    ASSERT_EQ(status_, cudaSuccess) << #call << ": " << cudaGetErrorString(status_);             \
  } while (0)

// A device buffer of n elements of T, freed on destruction.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (cudaMalloc(&data_, n * sizeof(T) + 1) != cudaSuccess) data_ = nullptr;
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return data_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    cudaDeviceSynchronize();
    cudaMemcpy(host.data(), data_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }
  // Fills with NaN (0xFF bytes are a NaN in f32, bf16 and f16) so unwritten outputs fail.
  void poison() { cudaMemset(data_, 0xFF, n_ * sizeof(T)); }

 private:
  T* data_ = nullptr;
  size_t n_;
};

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
  std::uniform_real_distribution<float> distribution(low, high);
  std::vector<float> values(n);
  for (float& v : values) v = distribution(rng);
  return values;
}

inline std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& values) {
  std::vector<__nv_bfloat16> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = __float2bfloat16(values[i]);
  return out;
}

inline std::vector<float> from_bf16(const std::vector<__nv_bfloat16>& values) {
  std::vector<float> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = __bfloat162float(values[i]);
  return out;
}

// |actual − expected| ≤ atol + rtol·|expected|.
struct Tolerance {
  double atol;
  double rtol;
};
inline constexpr Tolerance kFloat32{1e-5, 1e-5};  // the fp32 bound
inline constexpr Tolerance kBfloat16{1e-2, 1e-2};  // 8 mantissa bits, fp32 accumulation

inline void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, Tolerance tolerance,
                         const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  std::ostringstream mismatches;
  int count = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double error = std::abs(static_cast<double>(actual[i]) - expected[i]);
    if (error <= tolerance.atol + tolerance.rtol * std::abs(static_cast<double>(expected[i]))) continue;  // NaN fails
    if (count < 8) mismatches << "\n  [" << i << "] got " << actual[i] << ", expected " << expected[i];
    ++count;
  }
  EXPECT_EQ(count, 0) << what << ": " << count << " of " << actual.size() << " elements outside atol "
                      << tolerance.atol << " + rtol " << tolerance.rtol << mismatches.str();
}

}  // namespace meridian::ops::cuda::testing

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
#include <type_traits>
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
    cudaDeviceSynchronize();  // from pageable memory the DMA may still be running on return
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    cudaDeviceSynchronize();
    cudaMemcpy(host.data(), data_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }
  // Fills with NaN (0xFF bytes are a NaN in f32, bf16 and f16) so unwritten outputs fail.
  void poison() {
    cudaMemset(data_, 0xFF, n_ * sizeof(T));
    cudaDeviceSynchronize();  // cudaMemset on device memory may return before it is done
  }

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

// --- Element types (appended for the matmul, attention and cross-entropy tests) -------------------

// The tolerance for outputs stored as Element.
template <class Element>
constexpr Tolerance tolerance_for() {
  return std::is_same_v<Element, __nv_bfloat16> ? kBfloat16 : kFloat32;
}

// Host values as Element (bf16 rounds to nearest) and back to fp32.
template <class Element>
std::vector<Element> to_element(const std::vector<float>& values) {
  if constexpr (std::is_same_v<Element, __nv_bfloat16>) {
    return to_bf16(values);
  } else {
    return values;
  }
}

template <class Element>
std::vector<float> to_float(const std::vector<Element>& values) {
  if constexpr (std::is_same_v<Element, __nv_bfloat16>) {
    return from_bf16(values);
  } else {
    return values;
  }
}

// The values the device sees once stored as Element: the CPU reference runs on these, so a
// comparison measures the kernel's error, not the rounding of its inputs.
template <class Element>
std::vector<float> rounded_to(const std::vector<float>& values) {
  return to_float<Element>(to_element<Element>(values));
}

// A stream for one test, destroyed with it.
class TestStream {
 public:
  TestStream() {
    // A blocking stream: it waits for work on the legacy default stream, where DeviceBuffer's
    // cudaMemcpy and poison's cudaMemset run, so kernels never start before their inputs are in.
    if (cudaStreamCreateWithFlags(&stream_, cudaStreamDefault) != cudaSuccess) stream_ = nullptr;
  }
  ~TestStream() {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  TestStream(const TestStream&) = delete;
  TestStream& operator=(const TestStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

}  // namespace meridian::ops::cuda::testing

// --- Runtime, allocator and elementwise-kernel tests ---------------------------------------------

namespace meridian::ops::cuda::testing {

// For copies and integer results that must match the CPU bit for bit.
inline constexpr Tolerance kExact{0.0, 0.0};

inline std::vector<int32_t> random_ids(size_t n, int32_t vocabulary, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> distribution(0, vocabulary - 1);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = distribution(rng);
  return ids;
}

// Element offsets of views for the vectorized kernels: at 1 and 3 a bf16 or fp32 view is not 16-byte
// aligned (the kernels go element by element), at 8 it is again (16-byte vectors).
inline constexpr int64_t kViewOffsets[] = {1, 8, 3};

// What a view starting `offset` elements into `all` holds.
template <class T>
std::vector<T> from_offset(int64_t offset, const std::vector<T>& all) {
  return std::vector<T>(all.begin() + static_cast<std::ptrdiff_t>(offset), all.end());
}

// The message of the exception `action` throws (fails the test when it throws none).
template <class Action>
std::string thrown_message(Action&& action) {
  try {
    action();
  } catch (const std::exception& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

}  // namespace meridian::ops::cuda::testing

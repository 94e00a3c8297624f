// The mma.sync fragment layout (ops/cuda/mma_sync.cuh) on its own, before the flash attention kernels
// build on it: one m16n8k16 product pair through the fragment loaders, and its accumulators fed back
// as an A operand. Inputs are small integers, so every product and sum is exact in bf16 and fp32 and
// any misplaced register shows as an exact mismatch naming the element.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "cuda_test_support.h"
#include "ops/cuda/mma_sync_check.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::TestStream;
using testing::to_element;
using bf16 = __nv_bfloat16;

std::vector<float> small_integers(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> value(-3, 3);
  std::vector<float> values(n);
  for (float& v : values) v = static_cast<float>(value(rng));
  return values;
}

TEST(CudaMmaSync, FragmentLayoutAndAccumulatorsAsOperand) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(11);
  const std::vector<float> a = small_integers(16 * 16, rng);             // A[m][k]
  const std::vector<float> b_transposed = small_integers(16 * 16, rng);  // B[k][n] at [n][k]
  const std::vector<float> f_transposed = small_integers(8 * 16, rng);   // F[k][n] at [n][k]
  std::vector<float> d_expected(16 * 16, 0.0f), e_expected(16 * 8, 0.0f);
  for (int m = 0; m < 16; ++m) {
    for (int n = 0; n < 16; ++n) {
      for (int k = 0; k < 16; ++k) d_expected[m * 16 + n] += a[m * 16 + k] * b_transposed[n * 16 + k];
    }
  }
  // |D| ≤ 144: whole numbers that bf16 holds exactly, so feeding D back loses nothing.
  for (int m = 0; m < 16; ++m) {
    for (int n = 0; n < 8; ++n) {
      for (int k = 0; k < 16; ++k) e_expected[m * 8 + n] += d_expected[m * 16 + k] * f_transposed[n * 16 + k];
    }
  }

  TestStream stream;
  DeviceBuffer<bf16> a_device(to_element<bf16>(a)), b_device(to_element<bf16>(b_transposed)),
      f_device(to_element<bf16>(f_transposed));
  DeviceBuffer<float> d(16 * 16), e(16 * 8);
  d.poison();
  e.poison();
  mma_sync_chain(d.get(), e.get(), a_device.get(), b_device.get(), f_device.get(), stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  const std::vector<float> d_actual = d.download(), e_actual = e.download();
  for (int i = 0; i < 16 * 16; ++i) {
    ASSERT_EQ(d_actual[i], d_expected[i]) << "D[" << i / 16 << "][" << i % 16 << "] (A·B)";
  }
  for (int i = 0; i < 16 * 8; ++i) {
    ASSERT_EQ(e_actual[i], e_expected[i]) << "E[" << i / 8 << "][" << i % 8 << "] (D·F, D fed back as A)";
  }
}

// The two loads of B operands from a tile of rows in shared memory: ldmatrix.x4.trans with k along the
// rows (B = H: H's row k holds B[k][0 … 15]) and ldmatrix.x4 with n along them (B = Hᵀ: H's row n holds
// B[0 … 15][n]). Every element of H is distinct, so a register taken from the wrong row or column, or
// the two k of a register swapped, gives a wrong product.
TEST(CudaMmaSync, LoadsOfRowsAsBOperand) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(12);
  const std::vector<float> a = small_integers(16 * 16, rng);  // A[m][k]
  std::vector<float> h(16 * 16);                              // H: distinct whole numbers
  for (int i = 0; i < 16 * 16; ++i) h[i] = static_cast<float>(i - 128);
  std::vector<float> g_expected(16 * 16, 0.0f), g_transposed_expected(16 * 16, 0.0f);
  for (int m = 0; m < 16; ++m) {
    for (int n = 0; n < 16; ++n) {
      for (int k = 0; k < 16; ++k) {
        g_expected[m * 16 + n] += a[m * 16 + k] * h[k * 16 + n];
        g_transposed_expected[m * 16 + n] += a[m * 16 + k] * h[n * 16 + k];
      }
    }
  }

  TestStream stream;
  DeviceBuffer<bf16> a_device(to_element<bf16>(a)), h_device(to_element<bf16>(h));
  DeviceBuffer<float> g(16 * 16), g_transposed(16 * 16);
  g.poison();
  g_transposed.poison();
  mma_sync_b_from_rows(g.get(), g_transposed.get(), a_device.get(), h_device.get(), stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  const std::vector<float> g_actual = g.download(), g_transposed_actual = g_transposed.download();
  for (int i = 0; i < 16 * 16; ++i) {
    ASSERT_EQ(g_actual[i], g_expected[i]) << "G[" << i / 16 << "][" << i % 16 << "] (A·H, H read by ldmatrix.trans)";
    ASSERT_EQ(g_transposed_actual[i], g_transposed_expected[i])
        << "G[" << i / 16 << "][" << i % 16 << "] (A·Hᵀ, H read by ldmatrix)";
  }
}

}  // namespace
}  // namespace meridian::ops::cuda

#include "ops/cpu/matmul.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ops/cpu/parallel.h"

namespace meridian::ops::cpu {

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    // An empty product leaves beta · c (BLAS semantics; beta = 0 clears c even if it held NaN).
    // oneDNN 2.6 returns without touching c in this case.
    for (int64_t row = 0; row < m; ++row) {
      float* c_row = c + row * ldc;
      for (int64_t col = 0; col < n; ++col) c_row[col] = beta == 0.0f ? 0.0f : beta * c_row[col];
    }
    return;
  }
  // oneDNN decides its thread count per call: the whole OpenMP team outside a parallel region, one
  // thread inside one (attention calls it per head from its own parallel loop).
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a,
                                          lda, b, ldb, beta, c, ldc);
  if (status != dnnl_success) {
    throw std::invalid_argument("sgemm: dnnl_sgemm failed with status " + std::to_string(status) +
                                " (trans_a=" + std::to_string(trans_a) + " trans_b=" +
                                std::to_string(trans_b) + " m=" + std::to_string(m) + " n=" +
                                std::to_string(n) + " k=" + std::to_string(k) + " lda=" +
                                std::to_string(lda) + " ldb=" + std::to_string(ldb) + " ldc=" +
                                std::to_string(ldc) + ")");
  }
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC) {
  // With a bias, each output row starts as the bias and the product is accumulated onto it
  // (beta = 1): the bias costs one streaming write instead of a second read-modify-write pass over
  // the output after the product (docs/performance.md has the measurement).
  float beta = 0.0f;
  if (bias != nullptr) {
#pragma omp parallel for schedule(static) if (N * OC >= kParallelElements)
    for (int64_t row = 0; row < N; ++row) {
      std::memcpy(out + row * OC, bias, static_cast<size_t>(OC) * sizeof(float));
    }
    beta = 1.0f;
  }
  sgemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

namespace {

// Column sums of an (N×OC) matrix added into dbias. Each column chunk belongs to one iteration and
// sums its rows in order, so the result is the same for every thread count and needs no scratch.
void add_column_sums(float* dbias, const float* dout, int64_t N, int64_t OC) {
  constexpr int64_t kColumnsPerChunk = 256;
  const int64_t chunks = (OC + kColumnsPerChunk - 1) / kColumnsPerChunk;
#pragma omp parallel for schedule(static) if (N * OC >= kParallelElements)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * kColumnsPerChunk;
    const int64_t width = std::min(kColumnsPerChunk, OC - begin);
    float sums[kColumnsPerChunk] = {};
    for (int64_t row = 0; row < N; ++row) {
      const float* __restrict__ dout_row = dout + row * OC + begin;
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) sums[j] += dout_row[j];
    }
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) dbias[begin + j] += sums[j];
  }
}

}  // namespace

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp != nullptr) sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight != nullptr) sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias != nullptr) add_column_sums(dbias, dout, N, OC);
}

}  // namespace meridian::ops::cpu

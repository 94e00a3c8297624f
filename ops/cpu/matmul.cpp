#include "ops/cpu/matmul.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ops/cpu/parallel.h"

namespace meridian::ops::cpu {

namespace {

// Threading: oneDNN 2.6 partitions some of GPT-2's skinny products poorly across threads (the MLP
// projection forward, M=256 N=768 K=3072, reaches 144 GFLOP/s on 2 cores where two independent
// half-width products reach 198). Cutting the output into one column panel per thread, each panel
// a single-threaded oneDNN call, was as fast or faster on every GPT-2 124M shape measured
// (docs/performance.md). Panels narrower than kMinPanelColumns would waste the micro-kernel's edge
// handling, so narrower outputs (or many threads) leave the threading to oneDNN.
constexpr int64_t kMinPanelColumns = 128;
// Panel edges fall on 16-float (64-byte) boundaries, so two threads never write one cache line of a
// row of c (given a 64-byte-aligned c and ldc).
constexpr int64_t kPanelAlignment = 16;

int64_t panel_edge(int64_t n, int64_t index, int64_t panels) {
  if (index >= panels) return n;
  return (n * index / panels) / kPanelAlignment * kPanelAlignment;
}

// Runs product(column_begin, column_end) over the output columns [0, n): split into one panel per
// thread when that pays, else once over all columns (oneDNN then threads internally, or runs on
// the calling thread inside a parallel region such as attention's). Returns the first failure.
template <class Product>
dnnl_status_t run_in_column_panels(int64_t n, const Product& product) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads <= 1 || n < threads * kMinPanelColumns) return product(int64_t{0}, n);
  dnnl_status_t failure = dnnl_success;
#pragma omp parallel num_threads(threads)
  {
    const int64_t team = omp_get_num_threads();
    const int64_t begin = panel_edge(n, omp_get_thread_num(), team);
    const int64_t end = panel_edge(n, omp_get_thread_num() + 1, team);
    // Inside this region oneDNN sees omp_in_parallel() and runs each panel on its own thread.
    const dnnl_status_t status = begin < end ? product(begin, end) : dnnl_success;
    if (status != dnnl_success) {
#pragma omp critical(meridian_sgemm_failure)
      failure = status;
    }
  }
  return failure;
}

void throw_on_failure(dnnl_status_t status, const char* what, bool trans_a, bool trans_b, int64_t m,
                      int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc) {
  if (status == dnnl_success) return;
  throw std::invalid_argument(
      std::string(what) + ": dnnl_sgemm failed with status " + std::to_string(status) +
      " (trans_a=" + std::to_string(trans_a) + " trans_b=" + std::to_string(trans_b) +
      " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
      " lda=" + std::to_string(lda) + " ldb=" + std::to_string(ldb) + " ldc=" + std::to_string(ldc) + ")");
}

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
  const char op_a = trans_a ? 'T' : 'N';
  const char op_b = trans_b ? 'T' : 'N';
  const dnnl_status_t status = run_in_column_panels(n, [&](int64_t begin, int64_t end) {
    // Columns begin…end of op(b) start at column begin of b, or at row begin of b when transposed.
    const float* b_panel = trans_b ? b + begin * ldb : b + begin;
    return dnnl_sgemm(op_a, op_b, m, end - begin, k, alpha, a, lda, b_panel, ldb, beta, c + begin, ldc);
  });
  throw_on_failure(status, "sgemm", trans_a, trans_b, m, n, k, lda, ldb, ldc);
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC) {
  if (N == 0 || OC == 0) return;
  if (C == 0) {  // no products to add: out is the bias, or zero
    for (int64_t row = 0; row < N; ++row) {
      for (int64_t o = 0; o < OC; ++o) out[row * OC + o] = bias != nullptr ? bias[o] : 0.0f;
    }
    return;
  }
  // With a bias, the thread that owns a column panel first fills it with the bias and then
  // accumulates the product onto it (beta = 1): the bias costs one write of the panel, made by the
  // thread about to read it, instead of a separate pass over the output.
  const dnnl_status_t status = run_in_column_panels(OC, [&](int64_t begin, int64_t end) {
    const int64_t width = end - begin;
    if (bias != nullptr) {
      for (int64_t row = 0; row < N; ++row) {
        std::memcpy(out + row * OC + begin, bias + begin, static_cast<size_t>(width) * sizeof(float));
      }
    }
    return dnnl_sgemm('N', 'T', N, width, C, 1.0f, inp, C, weight + begin * C, C,
                      bias != nullptr ? 1.0f : 0.0f, out + begin, OC);
  });
  throw_on_failure(status, "matmul_forward", false, true, N, OC, C, C, C, OC);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp != nullptr) sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  if (dweight != nullptr) sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias != nullptr) add_column_sums(dbias, dout, N, OC);
}

}  // namespace meridian::ops::cpu

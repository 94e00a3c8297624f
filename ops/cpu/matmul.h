#pragma once
// Matrix products on the CPU through oneDNN's sgemm (see docs/performance.md for the measurement
// that chose it over OpenBLAS on this class of machine). Row-major throughout.
#include <cstdint>

namespace meridian::ops::cpu {

// c (m×n, leading dimension ldc) = alpha · op(a) · op(b) + beta · c, where op(x) is x or xᵀ.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// out (N×OC) = inp (N×C) · weightᵀ + bias, with weight stored (OC×C) as in PyTorch and llm.c.
// bias may be null.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t C, int64_t OC);

// dinp += dout · weight;  dweight += doutᵀ · inp;  dbias += column sums of dout.
// Any of dinp, dweight, dbias may be null (that gradient is not needed).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC);

}  // namespace meridian::ops::cpu

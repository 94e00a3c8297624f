#include "ops/cpu/elementwise.h"

#include "ops/cpu/parallel.h"

namespace meridian::ops::cpu {

void add_forward(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void add_backward(float* da, float* db, const float* dout, int64_t n) {
  if (da) axpy(da, dout, 1.0f, n);
  if (db) axpy(db, dout, 1.0f, n);
}

void axpy(float* dst, const float* src, float alpha, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) dst[i] += alpha * src[i];
}

void scale(float* x, float alpha, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

void scaled_copy(float* out, const float* x, float alpha, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) out[i] = alpha * x[i];
}

void fill(float* x, float value, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

}  // namespace meridian::ops::cpu

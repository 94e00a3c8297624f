#include "ops/cpu/vocab_slice_cross_entropy.h"

#include <limits>
#include <stdexcept>
#include <string>

#include "ops/cpu/parallel.h"
#include "ops/cpu/vector_math.h"

namespace meridian::ops::cpu {

namespace {

// Checked before the parallel loops: an exception cannot leave an OpenMP region.
void check_slice(int64_t Vs, int64_t Vs_p) {
  if (Vs < 0 || Vs > Vs_p) {
    throw std::invalid_argument("vocab slice cross_entropy: need 0 <= Vs <= Vs_p, got Vs=" + std::to_string(Vs) +
                                " Vs_p=" + std::to_string(Vs_p));
  }
}

bool in_slice(int32_t target, int64_t first, int64_t Vs) { return target >= first && target < first + Vs; }

}  // namespace

void vocab_slice_row_max(float* row_max, const float* logits, int64_t N, int64_t Vs, int64_t Vs_p) {
  check_slice(Vs, Vs_p);
#pragma omp parallel for schedule(static) if (N * Vs >= kParallelElements)
  for (int64_t i = 0; i < N; ++i)
    row_max[i] = simd_max(logits + i * Vs_p, Vs, -std::numeric_limits<float>::infinity());
}

void vocab_slice_sum_exp(float* sum_exp, const float* logits, const float* row_max, int64_t N, int64_t Vs,
                         int64_t Vs_p) {
  check_slice(Vs, Vs_p);
#pragma omp parallel for schedule(static) if (N * Vs >= kParallelElements)
  for (int64_t i = 0; i < N; ++i) {
    const float* __restrict__ row = logits + i * Vs_p;
    const float shift = row_max[i];
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < Vs; ++j) sum += simd_exp(row[j] - shift);
    sum_exp[i] = sum;
  }
}

void vocab_slice_target_logit(float* target_logit, const float* logits, const int32_t* targets, int64_t first,
                              int64_t N, int64_t Vs, int64_t Vs_p) {
  check_slice(Vs, Vs_p);
  for (int64_t i = 0; i < N; ++i)
    target_logit[i] = in_slice(targets[i], first, Vs) ? logits[i * Vs_p + (targets[i] - first)] : 0.0f;
}

void vocab_slice_cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits,
                                        const float* lse, const int32_t* targets, int64_t first, int64_t N,
                                        int64_t Vs, int64_t Vs_p) {
  check_slice(Vs, Vs_p);
#pragma omp parallel for schedule(static) if (N * Vs >= kParallelElements)
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] < 0) continue;
    const float* __restrict__ row = logits + i * Vs_p;
    float* __restrict__ drow = dlogits + i * Vs_p;
    const float dloss = dlosses[i];
    const float row_lse = lse[i];
#pragma omp simd
    for (int64_t j = 0; j < Vs; ++j) drow[j] += dloss * simd_exp(row[j] - row_lse);
    if (in_slice(targets[i], first, Vs)) drow[targets[i] - first] -= dloss;
  }
}

}  // namespace meridian::ops::cpu

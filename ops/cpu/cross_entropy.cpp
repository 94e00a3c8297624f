#include "ops/cpu/cross_entropy.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "ops/cpu/parallel.h"
#include "ops/cpu/vector_math.h"
#include "ops/cpu/vocab_slice_cross_entropy.h"

namespace meridian::ops::cpu {

namespace {

// Checked before the parallel loops: an exception cannot leave an OpenMP region.
void check_arguments(const int32_t* targets, int64_t N, int64_t V, int64_t Vp) {
  if (V <= 0 || V > Vp) {
    throw std::invalid_argument("cross_entropy: need 0 < V <= Vp, got V=" + std::to_string(V) +
                                " Vp=" + std::to_string(Vp));
  }
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] >= V) {
      throw std::invalid_argument("cross_entropy: target " + std::to_string(targets[i]) + " of row " +
                                  std::to_string(i) + " is not below V=" + std::to_string(V));
    }
  }
}

// log Σ_j exp(row[j]) over the V real columns, shifted by the row max so no exp overflows.
float row_log_sum_exp(const float* __restrict__ row, int64_t V) {
  const float row_max = simd_max(row, V, -std::numeric_limits<float>::infinity());
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < V; ++j) sum += simd_exp(row[j] - row_max);
  return row_max + std::log(sum);
}

}  // namespace

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V, int64_t Vp) {
  check_arguments(targets, N, V, Vp);
  // One row (a vocabulary of logits, ~200 KB for GPT-2) per iteration: the max pass leaves it in L2
  // for the exp pass.
#pragma omp parallel for schedule(static) if (N * V >= kParallelElements)
  for (int64_t i = 0; i < N; ++i) {
    const float* row = logits + i * Vp;
    const float row_lse = row_log_sum_exp(row, V);
    lse[i] = row_lse;
    losses[i] = targets[i] < 0 ? 0.0f : row_lse - row[targets[i]];
  }
}

// The whole vocabulary is the slice that starts at 0, so the slice kernel computes it (same arithmetic,
// same bits); this twin only adds the full-vocabulary target checks.
void cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V, int64_t Vp) {
  check_arguments(targets, N, V, Vp);
  vocab_slice_cross_entropy_backward(dlogits, dlosses, logits, lse, targets, 0, N, V, Vp);
}

}  // namespace meridian::ops::cpu

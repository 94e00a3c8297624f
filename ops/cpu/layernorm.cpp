#include "ops/cpu/layernorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/parallel.h"

namespace meridian::ops::cpu {

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kParallelElements)
  for (int64_t row = 0; row < N; ++row) {
    const float* __restrict__ x = inp + row * C;
    float* __restrict__ y = out + row * C;
    // Two passes over a row that sits in L1: the centred variance avoids E[x²] − E[x]²'s cancellation.
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; ++c) sum += x[c];
    const float row_mean = sum / static_cast<float>(C);
    float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
    for (int64_t c = 0; c < C; ++c) {
      const float centred = x[c] - row_mean;
      squares += centred * centred;
    }
    const float row_rstd = 1.0f / std::sqrt(squares / static_cast<float>(C) + eps);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) y[c] = (x[c] - row_mean) * row_rstd * weight[c] + bias[c];
    mean[row] = row_mean;
    rstd[row] = row_rstd;
  }
}

namespace {

// The weight and bias gradients are sums over rows. Rows are cut into blocks whose size depends only
// on N (never on the thread count); each block writes its own partial sums and the partials are
// added in block order, so the result is bit-identical for any number of threads.
int64_t rows_per_reduction_block(int64_t N) {
  constexpr int64_t kMinRowsPerBlock = 32;
  constexpr int64_t kMaxBlocks = 256;
  return std::max(kMinRowsPerBlock, (N + kMaxBlocks - 1) / kMaxBlocks);
}

// dinp += (dnorm − mean(dnorm) − norm · mean(dnorm · norm)) · rstd for one row, dnorm = weight ⊙ dout.
void add_input_gradient_row(float* __restrict__ dinp, const float* __restrict__ dout,
                            const float* __restrict__ x, const float* __restrict__ weight, float row_mean,
                            float row_rstd, int64_t C) {
  float dnorm_sum = 0.0f;
  float dnorm_norm_sum = 0.0f;
#pragma omp simd reduction(+ : dnorm_sum, dnorm_norm_sum)
  for (int64_t c = 0; c < C; ++c) {
    const float norm = (x[c] - row_mean) * row_rstd;
    const float dnorm = weight[c] * dout[c];
    dnorm_sum += dnorm;
    dnorm_norm_sum += dnorm * norm;
  }
  const float dnorm_mean = dnorm_sum / static_cast<float>(C);
  const float dnorm_norm_mean = dnorm_norm_sum / static_cast<float>(C);
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) {
    const float norm = (x[c] - row_mean) * row_rstd;
    const float dnorm = weight[c] * dout[c];
    dinp[c] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * row_rstd;
  }
}

}  // namespace

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  const bool wants_parameter_gradients = dweight != nullptr || dbias != nullptr;
  const int64_t block_rows = rows_per_reduction_block(N);
  const int64_t blocks = (N + block_rows - 1) / block_rows;
  // partials[block] holds that block's Σ dout·norm (first C) and Σ dout (next C).
  std::vector<float> partials(wants_parameter_gradients ? static_cast<size_t>(blocks * 2 * C) : 0);

#pragma omp parallel for schedule(static) if (N * C >= kParallelElements)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t row_end = std::min(N, (block + 1) * block_rows);
    float* __restrict__ dweight_partial =
        wants_parameter_gradients ? partials.data() + block * 2 * C : nullptr;
    float* __restrict__ dbias_partial = wants_parameter_gradients ? dweight_partial + C : nullptr;
    for (int64_t row = block * block_rows; row < row_end; ++row) {
      const float* __restrict__ dout_row = dout + row * C;
      const float* __restrict__ x = inp + row * C;
      const float row_mean = mean[row];
      const float row_rstd = rstd[row];
      if (wants_parameter_gradients) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          dweight_partial[c] += dout_row[c] * ((x[c] - row_mean) * row_rstd);
          dbias_partial[c] += dout_row[c];
        }
      }
      if (dinp != nullptr) {
        add_input_gradient_row(dinp + row * C, dout_row, x, weight, row_mean, row_rstd, C);
      }
    }
  }
  if (!wants_parameter_gradients) return;

#pragma omp parallel for simd schedule(static) if (blocks * C >= kParallelElements)
  for (int64_t c = 0; c < C; ++c) {
    float weight_sum = 0.0f;
    float bias_sum = 0.0f;
    for (int64_t block = 0; block < blocks; ++block) {
      weight_sum += partials[static_cast<size_t>(block * 2 * C + c)];
      bias_sum += partials[static_cast<size_t>(block * 2 * C + C + c)];
    }
    if (dweight != nullptr) dweight[c] += weight_sum;
    if (dbias != nullptr) dbias[c] += bias_sum;
  }
}

}  // namespace meridian::ops::cpu

#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cpu/matmul.h"
#include "ops/cpu/vector_math.h"

namespace meridian::ops::cpu {

namespace {

// Tile sizes: a query block of kQueryRows rows meets the keys kKeyColumns at a time. One tile of
// scores (32 KiB at 64×128) stays in L1/L2 next to the q, k and v rows it came from, and every
// product on it is one single-threaded sgemm call.
constexpr int64_t kQueryRows = 64;
constexpr int64_t kKeyColumns = 128;

struct AttentionShape {
  int64_t B;
  int64_t T;
  int64_t C;
  int64_t NH;
  int64_t head_size;
  int64_t qkv_row_stride;  // 3C: distance between consecutive tokens in the fused qkv buffer
  float scale;             // 1/√head_size
};

// Validated before any parallel region: an exception cannot leave one.
AttentionShape make_shape(int64_t B, int64_t T, int64_t C, int64_t NH) {
  if (B < 0 || T < 0 || NH <= 0 || C <= 0 || C % NH != 0) {
    throw std::invalid_argument("attention: need C divisible by NH > 0, got B=" + std::to_string(B) + " T=" +
                                std::to_string(T) + " C=" + std::to_string(C) + " NH=" + std::to_string(NH));
  }
  const int64_t head_size = C / NH;
  return {B, T, C, NH, head_size, 3 * C, 1.0f / std::sqrt(static_cast<float>(head_size))};
}

// Offsets of head h of batch b inside the fused (B, T, 3C) layout [q | k | v]; the same offsets
// address dqkv. Within a head, token t sits t·qkv_row_stride further on.
struct HeadOffsets {
  int64_t q;
  int64_t k;
  int64_t v;
  int64_t out;  // into the (B, T, C) out/dout buffers
  int64_t lse;  // into the (B, NH, T) lse buffer
};

HeadOffsets head_offsets(const AttentionShape& s, int64_t b, int64_t h) {
  const int64_t q = b * s.T * s.qkv_row_stride + h * s.head_size;
  return {q, q + s.C, q + 2 * s.C, b * s.T * s.C + h * s.head_size, (b * s.NH + h) * s.T};
}

// Number of keys in [key_begin, key_begin + columns) that query t may see (keys ≤ t).
int64_t visible_keys(int64_t t, int64_t key_begin, int64_t columns) {
  return std::clamp<int64_t>(t - key_begin + 1, 0, columns);
}

// One query block of one head, flash-attention style: the running row max and row sum let each key
// tile be folded into the output as soon as it is computed, so only one tile of scores exists.
// out rows (leading dimension C) hold the unnormalised accumulator until the last tile.
void attend_query_block(float* out, float* lse, const float* q, const float* k, const float* v,
                        int64_t first_query, int64_t rows, const AttentionShape& s, float* scores,
                        float* row_max, float* row_sum) {
  const int64_t ld = s.qkv_row_stride;
  const int64_t key_end = first_query + rows;
  std::fill(row_max, row_max + rows, -std::numeric_limits<float>::infinity());
  std::fill(row_sum, row_sum + rows, 0.0f);
  for (int64_t key_begin = 0; key_begin < key_end; key_begin += kKeyColumns) {
    const int64_t columns = std::min(kKeyColumns, key_end - key_begin);
    sgemm(false, true, rows, columns, s.head_size, s.scale, q, ld, k + key_begin * ld, ld, 0.0f, scores,
          kKeyColumns);
    for (int64_t i = 0; i < rows; ++i) {
      float* __restrict__ row = scores + i * kKeyColumns;
      const int64_t visible = visible_keys(first_query + i, key_begin, columns);
      std::fill(row + visible, row + columns, 0.0f);
      if (visible == 0) continue;  // a later tile wholly in this row's future
      const float new_max = simd_max(row, visible, row_max[i]);
      float tile_sum = 0.0f;
#pragma omp simd reduction(+ : tile_sum)
      for (int64_t j = 0; j < visible; ++j) {
        row[j] = simd_exp(row[j] - new_max);
        tile_sum += row[j];
      }
      if (key_begin > 0 && new_max != row_max[i]) {
        // Earlier tiles were exponentiated against a smaller max: rescale what they contributed.
        const float correction = std::exp(row_max[i] - new_max);
        row_sum[i] *= correction;
        float* __restrict__ out_row = out + i * s.C;
#pragma omp simd
        for (int64_t d = 0; d < s.head_size; ++d) out_row[d] *= correction;
      }
      row_sum[i] += tile_sum;
      row_max[i] = new_max;
    }
    // The first tile overwrites out (beta = 0), so stale contents are never read.
    sgemm(false, false, rows, s.head_size, columns, 1.0f, scores, kKeyColumns, v + key_begin * ld, ld,
          key_begin == 0 ? 0.0f : 1.0f, out, s.C);
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* __restrict__ out_row = out + i * s.C;
    const float inverse_sum = 1.0f / row_sum[i];
#pragma omp simd
    for (int64_t d = 0; d < s.head_size; ++d) out_row[d] *= inverse_sum;
    lse[i] = row_max[i] + std::log(row_sum[i]);
  }
}

// Scratch for one thread's backward tiles.
struct BackwardScratch {
  std::vector<float> probs;       // P, kQueryRows × kKeyColumns
  std::vector<float> score_grad;  // dP, then dS in place
  std::vector<float> delta;       // D_i = dO_i · O_i
};

// Gradient of one head, all query blocks. A head is owned by one thread, so its dq, dk and dv
// slices are accumulated straight into dqkv (beta = 1) without races or partial buffers.
void backprop_head(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                   const AttentionShape& s, int64_t b, int64_t h, BackwardScratch& scratch) {
  const HeadOffsets at = head_offsets(s, b, h);
  const int64_t ld = s.qkv_row_stride;
  const float* q = qkv + at.q;
  const float* k = qkv + at.k;
  const float* v = qkv + at.v;
  float* dq = dqkv + at.q;
  float* dk = dqkv + at.k;
  float* dv = dqkv + at.v;
  float* probs = scratch.probs.data();
  float* score_grad = scratch.score_grad.data();
  float* delta = scratch.delta.data();

  for (int64_t first_query = 0; first_query < s.T; first_query += kQueryRows) {
    const int64_t rows = std::min(kQueryRows, s.T - first_query);
    const float* dout_block = dout + at.out + first_query * s.C;
    const float* out_block = out + at.out + first_query * s.C;
    const float* q_block = q + first_query * ld;
    const float* lse_block = lse + at.lse + first_query;
    for (int64_t i = 0; i < rows; ++i) {
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < s.head_size; ++d) dot += dout_block[i * s.C + d] * out_block[i * s.C + d];
      delta[i] = dot;
    }
    const int64_t key_end = first_query + rows;
    for (int64_t key_begin = 0; key_begin < key_end; key_begin += kKeyColumns) {
      const int64_t columns = std::min(kKeyColumns, key_end - key_begin);
      const float* k_block = k + key_begin * ld;
      const float* v_block = v + key_begin * ld;
      // P = exp(scale·Q Kᵀ − lse), recomputed instead of stored by the forward.
      sgemm(false, true, rows, columns, s.head_size, s.scale, q_block, ld, k_block, ld, 0.0f, probs,
            kKeyColumns);
      for (int64_t i = 0; i < rows; ++i) {
        float* __restrict__ row = probs + i * kKeyColumns;
        const int64_t visible = visible_keys(first_query + i, key_begin, columns);
        const float row_lse = lse_block[i];
#pragma omp simd
        for (int64_t j = 0; j < visible; ++j) row[j] = simd_exp(row[j] - row_lse);
        std::fill(row + visible, row + columns, 0.0f);
      }
      // dV += Pᵀ dO;  dP = dO Vᵀ
      sgemm(true, false, columns, s.head_size, rows, 1.0f, probs, kKeyColumns, dout_block, s.C, 1.0f,
            dv + key_begin * ld, ld);
      sgemm(false, true, rows, columns, s.head_size, 1.0f, dout_block, s.C, v_block, ld, 0.0f, score_grad,
            kKeyColumns);
      // dS = P ∘ (dP − D): the softmax Jacobian applied row by row (masked entries have P = 0).
      for (int64_t i = 0; i < rows; ++i) {
        const float* __restrict__ p_row = probs + i * kKeyColumns;
        float* __restrict__ ds_row = score_grad + i * kKeyColumns;
        const float row_delta = delta[i];
#pragma omp simd
        for (int64_t j = 0; j < columns; ++j) ds_row[j] = p_row[j] * (ds_row[j] - row_delta);
      }
      // dQ += scale · dS K;  dK += scale · dSᵀ Q
      sgemm(false, false, rows, s.head_size, columns, s.scale, score_grad, kKeyColumns, k_block, ld, 1.0f,
            dq + first_query * ld, ld);
      sgemm(true, false, columns, s.head_size, rows, s.scale, score_grad, kKeyColumns, q_block, ld, 1.0f,
            dk + key_begin * ld, ld);
    }
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t T, int64_t C,
                       int64_t NH) {
  const AttentionShape s = make_shape(B, T, C, NH);
  const int64_t heads = B * NH;
  const int64_t query_blocks = (T + kQueryRows - 1) / kQueryRows;
#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(kQueryRows * kKeyColumns));
    std::vector<float> row_max(static_cast<size_t>(kQueryRows));
    std::vector<float> row_sum(static_cast<size_t>(kQueryRows));
    // Causal blocks late in the sequence cost more: hand them out first so the cheap ones fill gaps.
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < heads * query_blocks; ++item) {
      const int64_t query_block = query_blocks - 1 - item / heads;
      const int64_t head = item % heads;
      const HeadOffsets at = head_offsets(s, head / NH, head % NH);
      const int64_t first_query = query_block * kQueryRows;
      const int64_t rows = std::min(kQueryRows, T - first_query);
      attend_query_block(out + at.out + first_query * C, lse + at.lse + first_query,
                         qkv + at.q + first_query * s.qkv_row_stride, qkv + at.k, qkv + at.v, first_query,
                         rows, s, scores.data(), row_max.data(), row_sum.data());
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        int64_t B, int64_t T, int64_t C, int64_t NH) {
  const AttentionShape s = make_shape(B, T, C, NH);
  const int64_t heads = B * NH;
  // Whole heads are the unit of work: splitting a head's query blocks across threads would make them
  // race on its dk and dv rows.
#pragma omp parallel
  {
    BackwardScratch scratch{std::vector<float>(static_cast<size_t>(kQueryRows * kKeyColumns)),
                            std::vector<float>(static_cast<size_t>(kQueryRows * kKeyColumns)),
                            std::vector<float>(static_cast<size_t>(kQueryRows))};
#pragma omp for schedule(static)
    for (int64_t head = 0; head < heads; ++head) {
      backprop_head(dqkv, dout, qkv, out, lse, s, head / NH, head % NH, scratch);
    }
  }
}

}  // namespace meridian::ops::cpu

#pragma once
// Double-precision reference implementations of the CPU kernels' forward maths, written for
// obviousness rather than speed: the kernels in ops/cpu/ (and the differentiable functions in
// core/) are tested against these, directly and through finite differences of them.
//
// Conventions: tensors are row-major std::vector<double>, sizes are passed explicitly, layouts are
// the kernels' layouts (see the matching headers in ops/cpu/). Sizes that do not match throw
// std::invalid_argument so a mistake in a test fails loudly instead of reading out of bounds.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace meridian::reference {

inline void expect_size(const std::vector<double>& values, int64_t expected, const char* what) {
  if (static_cast<int64_t>(values.size()) != expected) {
    throw std::invalid_argument(std::string("reference: ") + what + " has " + std::to_string(values.size()) +
                                " elements, expected " + std::to_string(expected));
  }
}

// c (m×n, leading dimension ldc) = alpha · op(a) · op(b) + beta · c, op(x) = x or xᵀ; a, b and c are
// row-major with the given leading dimensions. Elements of c outside the m×n block are kept.
inline std::vector<double> gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                                const std::vector<double>& a, int64_t lda, const std::vector<double>& b,
                                int64_t ldb, double beta, std::vector<double> c, int64_t ldc) {
  auto a_at = [&](int64_t row, int64_t col) {
    return trans_a ? a.at(static_cast<size_t>(col * lda + row)) : a.at(static_cast<size_t>(row * lda + col));
  };
  auto b_at = [&](int64_t row, int64_t col) {
    return trans_b ? b.at(static_cast<size_t>(col * ldb + row)) : b.at(static_cast<size_t>(row * ldb + col));
  };
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0.0;
      for (int64_t p = 0; p < k; ++p) sum += a_at(i, p) * b_at(p, j);
      double& out = c.at(static_cast<size_t>(i * ldc + j));
      out = alpha * sum + beta * out;
    }
  }
  return c;
}

// Linear layer as in PyTorch: out (N×OC) = inp (N×C) · weightᵀ + bias, weight stored (OC×C).
// An empty bias means none.
inline std::vector<double> linear(const std::vector<double>& inp, const std::vector<double>& weight,
                                  const std::vector<double>& bias, int64_t N, int64_t C, int64_t OC) {
  expect_size(inp, N * C, "linear inp");
  expect_size(weight, OC * C, "linear weight");
  if (!bias.empty()) expect_size(bias, OC, "linear bias");
  std::vector<double> out(static_cast<size_t>(N * OC));
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t o = 0; o < OC; ++o) {
      double sum = bias.empty() ? 0.0 : bias[static_cast<size_t>(o)];
      for (int64_t c = 0; c < C; ++c) {
        sum += inp[static_cast<size_t>(i * C + c)] * weight[static_cast<size_t>(o * C + c)];
      }
      out[static_cast<size_t>(i * OC + o)] = sum;
    }
  }
  return out;
}

struct LayerNormOutput {
  std::vector<double> out;   // N×C
  std::vector<double> mean;  // N
  std::vector<double> rstd;  // N, 1/sqrt(biased variance + eps)
};

inline LayerNormOutput layernorm(const std::vector<double>& inp, const std::vector<double>& weight,
                                 const std::vector<double>& bias, int64_t N, int64_t C, double eps) {
  expect_size(inp, N * C, "layernorm inp");
  expect_size(weight, C, "layernorm weight");
  expect_size(bias, C, "layernorm bias");
  LayerNormOutput result{std::vector<double>(static_cast<size_t>(N * C)),
                         std::vector<double>(static_cast<size_t>(N)),
                         std::vector<double>(static_cast<size_t>(N))};
  for (int64_t i = 0; i < N; ++i) {
    const double* x = inp.data() + i * C;
    double mean = 0.0;
    for (int64_t c = 0; c < C; ++c) mean += x[c];
    mean /= static_cast<double>(C);
    double variance = 0.0;
    for (int64_t c = 0; c < C; ++c) variance += (x[c] - mean) * (x[c] - mean);
    variance /= static_cast<double>(C);
    const double rstd = 1.0 / std::sqrt(variance + eps);
    for (int64_t c = 0; c < C; ++c) {
      result.out[static_cast<size_t>(i * C + c)] =
          (x[c] - mean) * rstd * weight[static_cast<size_t>(c)] + bias[static_cast<size_t>(c)];
    }
    result.mean[static_cast<size_t>(i)] = mean;
    result.rstd[static_cast<size_t>(i)] = rstd;
  }
  return result;
}

// GELU, tanh form (GPT-2's): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
inline double gelu(double x) {
  const double sqrt_2_over_pi = std::sqrt(2.0 / std::acos(-1.0));
  return 0.5 * x * (1.0 + std::tanh(sqrt_2_over_pi * (x + 0.044715 * x * x * x)));
}

inline std::vector<double> gelu(const std::vector<double>& inp) {
  std::vector<double> out(inp.size());
  std::transform(inp.begin(), inp.end(), out.begin(), [](double x) { return gelu(x); });
  return out;
}

struct AttentionOutput {
  std::vector<double> out;  // (B, T, C)
  std::vector<double> lse;  // (B, NH, T): log Σ_{j ≤ t} exp(score_tj)
};

// Causal multi-head self-attention on the fused qkv layout (B, T, 3C) = [q | k | v], head h owning
// channels h·hs … h·hs+hs−1 of each; scores scaled by 1/√hs; full softmax over keys 0…t.
inline AttentionOutput causal_self_attention(const std::vector<double>& qkv, int64_t B, int64_t T, int64_t C,
                                             int64_t NH) {
  expect_size(qkv, B * T * 3 * C, "attention qkv");
  if (NH <= 0 || C % NH != 0) throw std::invalid_argument("reference: attention needs C divisible by NH");
  const int64_t hs = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  AttentionOutput result{std::vector<double>(static_cast<size_t>(B * T * C)),
                         std::vector<double>(static_cast<size_t>(B * NH * T))};
  auto at = [&](int64_t b, int64_t t, int64_t part, int64_t h, int64_t d) {
    return qkv[static_cast<size_t>((b * T + t) * 3 * C + part * C + h * hs + d)];
  };
  std::vector<double> scores(static_cast<size_t>(T));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < NH; ++h) {
      for (int64_t t = 0; t < T; ++t) {
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < hs; ++d) dot += at(b, t, 0, h, d) * at(b, j, 1, h, d);
          scores[static_cast<size_t>(j)] = dot * scale;
          max_score = std::max(max_score, dot * scale);
        }
        double sum = 0.0;
        for (int64_t j = 0; j <= t; ++j) sum += std::exp(scores[static_cast<size_t>(j)] - max_score);
        for (int64_t d = 0; d < hs; ++d) {
          double value = 0.0;
          for (int64_t j = 0; j <= t; ++j) {
            value += std::exp(scores[static_cast<size_t>(j)] - max_score) / sum * at(b, j, 2, h, d);
          }
          result.out[static_cast<size_t>((b * T + t) * C + h * hs + d)] = value;
        }
        result.lse[static_cast<size_t>((b * NH + h) * T + t)] = max_score + std::log(sum);
      }
    }
  }
  return result;
}

// out[i, :] = table[ids[i], :].
inline std::vector<double> embedding(const std::vector<int32_t>& ids, const std::vector<double>& table,
                                     int64_t N, int64_t C) {
  if (static_cast<int64_t>(ids.size()) != N) throw std::invalid_argument("reference: embedding ids size");
  std::vector<double> out(static_cast<size_t>(N * C));
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t c = 0; c < C; ++c) {
      out[static_cast<size_t>(i * C + c)] =
          table.at(static_cast<size_t>(ids[static_cast<size_t>(i)] * C + c));
    }
  }
  return out;
}

// A table holding rows [first_row, first_row + rows) of a larger one: ids outside give zero rows.
inline std::vector<double> embedding_slice(const std::vector<int32_t>& ids, const std::vector<double>& table,
                                           int64_t first_row, int64_t rows, int64_t N, int64_t C) {
  if (static_cast<int64_t>(ids.size()) != N) throw std::invalid_argument("reference: embedding_slice ids size");
  expect_size(table, rows * C, "embedding_slice table");
  std::vector<double> out(static_cast<size_t>(N * C), 0.0);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t local = ids[static_cast<size_t>(i)] - first_row;
    if (local < 0 || local >= rows) continue;
    for (int64_t c = 0; c < C; ++c) out[static_cast<size_t>(i * C + c)] = table[static_cast<size_t>(local * C + c)];
  }
  return out;
}

struct CrossEntropyOutput {
  std::vector<double> losses;  // N; 0 for ignored (negative-target) rows
  std::vector<double> lse;     // N; log Σ_{j<V} exp(logits[i, j]), for every row
};

// Softmax cross-entropy over rows of Vp logits of which the first V are real.
inline CrossEntropyOutput cross_entropy(const std::vector<double>& logits,
                                        const std::vector<int32_t>& targets, int64_t N, int64_t V,
                                        int64_t Vp) {
  expect_size(logits, N * Vp, "cross_entropy logits");
  if (static_cast<int64_t>(targets.size()) != N)
    throw std::invalid_argument("reference: cross_entropy targets");
  CrossEntropyOutput result{std::vector<double>(static_cast<size_t>(N)),
                            std::vector<double>(static_cast<size_t>(N))};
  for (int64_t i = 0; i < N; ++i) {
    const double* row = logits.data() + i * Vp;
    const double row_max = *std::max_element(row, row + V);
    double sum = 0.0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(row[j] - row_max);
    const double lse = row_max + std::log(sum);
    const int32_t target = targets[static_cast<size_t>(i)];
    result.lse[static_cast<size_t>(i)] = lse;
    result.losses[static_cast<size_t>(i)] = target < 0 ? 0.0 : lse - row[target];
  }
  return result;
}

// The pieces a vocabulary slice contributes to a split cross-entropy (see
// ops/cpu/vocab_slice_cross_entropy.h): rows of Vs_p logits, the first Vs real, columns starting at
// vocabulary index `first`.
struct VocabSlicePieces {
  std::vector<double> row_max;       // −inf for an empty slice
  std::vector<double> sum_exp;       // Σ_j exp(x_ij − shift_i) with the given shifts
  std::vector<double> target_logit;  // x_i,target when the target is in the slice, else 0
};

inline VocabSlicePieces vocab_slice_pieces(const std::vector<double>& logits, const std::vector<int32_t>& targets,
                                           const std::vector<double>& shifts, int64_t first, int64_t N, int64_t Vs,
                                           int64_t Vs_p) {
  expect_size(logits, N * Vs_p, "vocab slice logits");
  expect_size(shifts, N, "vocab slice shifts");
  VocabSlicePieces pieces{std::vector<double>(static_cast<size_t>(N), -std::numeric_limits<double>::infinity()),
                          std::vector<double>(static_cast<size_t>(N), 0.0),
                          std::vector<double>(static_cast<size_t>(N), 0.0)};
  for (int64_t i = 0; i < N; ++i) {
    const double* row = logits.data() + i * Vs_p;
    const auto n = static_cast<size_t>(i);
    for (int64_t j = 0; j < Vs; ++j) {
      pieces.row_max[n] = std::max(pieces.row_max[n], row[j]);
      pieces.sum_exp[n] += std::exp(row[j] - shifts[n]);
    }
    const int64_t target = targets.at(n);
    if (target >= first && target < first + Vs) pieces.target_logit[n] = row[target - first];
  }
  return pieces;
}

struct AdamWConfig {
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double grad_scale = 1.0;
};

// One torch.optim.AdamW step (step is 1-based) on param, m and v in place.
inline void adamw_step(std::vector<double>& param, std::vector<double>& m, std::vector<double>& v,
                       const std::vector<double>& grad, const AdamWConfig& config, int64_t step) {
  const auto n = static_cast<int64_t>(param.size());
  expect_size(grad, n, "adamw grad");
  expect_size(m, n, "adamw m");
  expect_size(v, n, "adamw v");
  const double bias_correction1 = 1.0 - std::pow(config.beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(config.beta2, static_cast<double>(step));
  for (size_t i = 0; i < param.size(); ++i) {
    const double g = grad[i] * config.grad_scale;
    param[i] *= 1.0 - config.lr * config.weight_decay;
    m[i] = config.beta1 * m[i] + (1.0 - config.beta1) * g;
    v[i] = config.beta2 * v[i] + (1.0 - config.beta2) * g * g;
    const double denom = std::sqrt(v[i]) / std::sqrt(bias_correction2) + config.eps;
    param[i] -= config.lr / bias_correction1 * m[i] / denom;
  }
}

struct SgdConfig {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  double grad_scale = 1.0;
};

// One torch.optim.SGD step in place. momentum_buffer is used only when momentum != 0; on the first
// step it starts as the gradient.
inline void sgd_step(std::vector<double>& param, std::vector<double>& momentum_buffer,
                     const std::vector<double>& grad, const SgdConfig& config, bool first_step) {
  const auto n = static_cast<int64_t>(param.size());
  expect_size(grad, n, "sgd grad");
  if (config.momentum != 0.0) expect_size(momentum_buffer, n, "sgd momentum buffer");
  for (size_t i = 0; i < param.size(); ++i) {
    double g = grad[i] * config.grad_scale + config.weight_decay * param[i];
    if (config.momentum != 0.0) {
      double& buffer = momentum_buffer[i];
      buffer = first_step ? g : config.momentum * buffer + (1.0 - config.dampening) * g;
      g = config.nesterov ? g + config.momentum * buffer : buffer;
    }
    param[i] -= config.lr * g;
  }
}

inline double sum_of_squares(const std::vector<double>& x) {
  double sum = 0.0;
  for (double value : x) sum += value * value;
  return sum;
}

}  // namespace meridian::reference

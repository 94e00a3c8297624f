// Every differentiable function against float64 finite differences (see gradcheck.h).
#include <gtest/gtest.h>

#include "core/autograd/checkpoint.h"
#include "core/functions/functions.h"
#include "gradcheck.h"
#include "reference/reference_ops.h"

namespace meridian {
namespace {

using testing::GradInput;
using testing::gradcheck;
using testing::random_values;
using Values = std::vector<std::vector<double>>;

TEST(Gradcheck, LinearWithBiasOnThreeDimensionalInput) {
  const int64_t B = 2, T = 3, C = 5, OC = 7;
  gradcheck({{"x", random_values(B * T * C, 1), {B, T, C}},
             {"weight", random_values(OC * C, 2), {OC, C}},
             {"bias", random_values(OC, 3), {OC}}},
            [](const std::vector<Tensor>& in) { return fn::linear(in[0], in[1], in[2]); },
            [=](const Values& v) { return reference::linear(v[0], v[1], v[2], B * T, C, OC); });
}

TEST(Gradcheck, LinearWithoutBias) {
  const int64_t N = 4, C = 3, OC = 9;
  gradcheck({{"x", random_values(N * C, 4), {N, C}}, {"weight", random_values(OC * C, 5), {OC, C}}},
            [](const std::vector<Tensor>& in) { return fn::linear(in[0], in[1]); },
            [=](const Values& v) { return reference::linear(v[0], v[1], {}, N, C, OC); });
}

TEST(Gradcheck, LayerNorm) {
  const int64_t N = 6, C = 11;
  gradcheck({{"x", random_values(N * C, 6, -2, 2), {2, 3, C}},
             {"weight", random_values(C, 7), {C}},
             {"bias", random_values(C, 8), {C}}},
            [](const std::vector<Tensor>& in) { return fn::layer_norm(in[0], in[1], in[2], 1e-5f); },
            [=](const Values& v) { return reference::layernorm(v[0], v[1], v[2], N, C, 1e-5).out; });
}

TEST(Gradcheck, Gelu) {
  gradcheck({{"x", random_values(37, 9, -3, 3), {37}}},
            [](const std::vector<Tensor>& in) { return fn::gelu(in[0]); },
            [](const Values& v) { return reference::gelu(v[0]); });
}

TEST(Gradcheck, LinearGelu) {
  const int64_t B = 2, T = 3, C = 5, OC = 7;
  gradcheck({{"x", random_values(B * T * C, 21), {B, T, C}},
             {"weight", random_values(OC * C, 22), {OC, C}},
             {"bias", random_values(OC, 23), {OC}}},
            [](const std::vector<Tensor>& in) { return fn::linear_gelu(in[0], in[1], in[2]); },
            [=](const Values& v) { return reference::gelu(reference::linear(v[0], v[1], v[2], B * T, C, OC)); });
}

TEST(Gradcheck, Mlp) {
  const int64_t N = 4, C = 5, H = 7;
  gradcheck({{"x", random_values(N * C, 24), {N, C}},
             {"fc_weight", random_values(H * C, 25), {H, C}},
             {"fc_bias", random_values(H, 26), {H}},
             {"proj_weight", random_values(C * H, 27), {C, H}},
             {"proj_bias", random_values(C, 28), {C}}},
            [](const std::vector<Tensor>& in) { return fn::mlp(in[0], in[1], in[2], in[3], in[4]); },
            [=](const Values& v) {
              return reference::linear(reference::gelu(reference::linear(v[0], v[1], v[2], N, C, H)), v[3], v[4], N,
                                       H, C);
            });
}

TEST(Gradcheck, AddSameShapeAndSuffixBroadcast) {
  gradcheck({{"a", random_values(2 * 3 * 4, 10), {2, 3, 4}}, {"b", random_values(3 * 4, 11), {3, 4}}},
            [](const std::vector<Tensor>& in) { return fn::add(in[0], in[1]); },
            [](const Values& v) {
              std::vector<double> out(v[0]);
              for (size_t i = 0; i < out.size(); ++i) out[i] += v[1][i % v[1].size()];
              return out;
            });
  gradcheck({{"a", random_values(5, 12), {5}}, {"b", random_values(5, 13), {5}}},
            [](const std::vector<Tensor>& in) { return fn::add(in[0], in[1]); },
            [](const Values& v) {
              std::vector<double> out(v[0]);
              for (size_t i = 0; i < out.size(); ++i) out[i] += v[1][i];
              return out;
            });
}

TEST(Gradcheck, ScaleAndSum) {
  gradcheck({{"x", random_values(6, 14), {2, 3}}},
            [](const std::vector<Tensor>& in) { return fn::sum(fn::scale(in[0], -2.5f)); },
            [](const Values& v) {
              double total = 0.0;
              for (double x : v[0]) total += -2.5 * x;
              return std::vector<double>{total};
            });
}

TEST(Gradcheck, CausalSelfAttention) {
  for (auto [B, T, C, NH] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{2, 5, 6, 3}, {1, 1, 4, 2}, {1, 9, 8, 1}}) {
    gradcheck({{"qkv", random_values(static_cast<size_t>(B * T * 3 * C), 15), {B, T, 3 * C}}},
              [NH = NH](const std::vector<Tensor>& in) { return fn::causal_self_attention(in[0], NH); },
              [=](const Values& v) { return reference::causal_self_attention(v[0], B, T, C, NH).out; });
  }
}

TEST(Gradcheck, EmbeddingWithRepeatedIds) {
  const std::vector<int32_t> ids = {3, 0, 3, 2, 1, 3};
  const int64_t rows = 5, C = 4;
  Tensor id_tensor = Tensor::from_vector<int32_t>(ids, {2, 3});
  gradcheck({{"table", random_values(rows * C, 16), {rows, C}}},
            [&](const std::vector<Tensor>& in) { return fn::embedding(id_tensor, in[0]); },
            [&](const Values& v) { return reference::embedding(ids, v[0], 6, C); });
}

TEST(Gradcheck, EmbeddingSliceWithIdsInsideAndOutsideTheSlice) {
  const int64_t C = 4, first_row = 3, rows = 4;
  const std::vector<int32_t> ids = {2, 3, 6, 7, 4, 3, 0, 5};
  Tensor id_tensor = Tensor::from_vector<int32_t>(ids, {2, 4});
  gradcheck({{"table", random_values(rows * C, 30), {rows, C}}},
            [&](const std::vector<Tensor>& in) { return fn::embedding_slice(id_tensor, in[0], first_row); },
            [&](const Values& v) { return reference::embedding_slice(ids, v[0], first_row, rows, 8, C); });
}

TEST(Gradcheck, CrossEntropyOverPaddedVocabularyWithIgnoredTarget) {
  const int64_t N = 5, V = 7, Vp = 10;
  const std::vector<int32_t> targets = {0, 6, -1, 3, 6};
  Tensor target_tensor = Tensor::from_vector<int32_t>(targets, {N});
  gradcheck({{"logits", random_values(N * Vp, 17, -3, 3), {N, Vp}}},
            [&](const std::vector<Tensor>& in) { return fn::cross_entropy(in[0], target_tensor, V); },
            [&](const Values& v) {
              const auto result = reference::cross_entropy(v[0], targets, N, V, Vp);
              double total = 0.0;
              for (double l : result.losses) total += l;
              return std::vector<double>{total / 4.0};  // mean over the 4 counted rows
            });
}

TEST(Gradcheck, ViewsNarrowSelectAndContiguous) {
  gradcheck({{"x", random_values(4 * 6, 18), {4, 6}}},
            [](const std::vector<Tensor>& in) {
              Tensor cols = in[0].narrow(1, 1, 3).contiguous();  // strided view, then a copy
              return fn::add(cols.view({2, 2, 3}).select(1), in[0].slice(2, 4).narrow(1, 0, 3).contiguous());
            },
            [](const Values& v) {
              // select(1) of cols.view({2,2,3}) is rows 2 and 3 of cols; slice(2,4) gives rows 2 and 3.
              std::vector<double> out;
              for (int row : {0, 1})
                for (int c = 0; c < 3; ++c)
                  out.push_back(v[0][static_cast<size_t>((2 + row) * 6 + 1 + c)] +
                                v[0][static_cast<size_t>((2 + row) * 6 + c)]);
              return out;
            });
}

TEST(Gradcheck, CheckpointedBlock) {
  const int64_t N = 3, C = 4;
  gradcheck({{"x", random_values(N * C, 19), {N, C}}, {"weight", random_values(C * C, 20), {C, C}}},
            [](const std::vector<Tensor>& in) {
              const Tensor& w = in[1];
              return autograd::checkpoint([w](const Tensor& x) { return fn::gelu(fn::linear(x, w)); }, in[0], {w});
            },
            [=](const Values& v) { return reference::gelu(reference::linear(v[0], v[1], {}, N, C, C)); });
}

}  // namespace
}  // namespace meridian

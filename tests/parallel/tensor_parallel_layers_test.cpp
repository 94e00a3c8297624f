// Each tensor-parallel layer against the unsharded layer it splits, on the whole world as one
// tensor-parallel group: both are initialised from the same seed (layout-independent init), run on
// the same input, and the rank's output and gradients must equal the matching slices of the
// unsharded layer's, with and without sequence parallelism.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/functions/functions.h"
#include "core/nn/layers.h"
#include "parallel/tensor_parallel/column_parallel_linear.h"
#include "parallel/tensor_parallel/mappings.h"
#include "parallel/tensor_parallel/parallel_attention.h"
#include "parallel/tensor_parallel/parallel_block.h"
#include "parallel/tensor_parallel/parallel_mlp.h"
#include "parallel/tensor_parallel/row_parallel_linear.h"
#include "parallel/tensor_parallel/vocab_parallel_cross_entropy.h"
#include "parallel/tensor_parallel/vocab_parallel_embedding.h"
#include "tensor_parallel_test_support.h"

namespace meridian::parallel {
namespace {

using testing::chunk_of;
using testing::expect_close;
using testing::piece_of;

constexpr int64_t kBatch = 2, kSeqLen = 8, kChannels = 16, kHeads = 4;
constexpr uint64_t kSeed = 21;
constexpr double kRtol = 1e-5;

std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

Tensor leaf(const std::vector<float>& values, const Shape& shape) {
  Tensor t = Tensor::from_vector<float>(values, shape);
  t.set_requires_grad(true);
  return t;
}

// Sum over the group of a rank's partial gradient (sequence-parallel replicated parameters).
std::vector<float> summed_over_group(const Tensor& grad, comm::Communicator& group) {
  Tensor total = grad.clone();
  group.all_reduce(total, comm::ReduceOp::sum)->wait();
  return total.to_float_vector();
}

// Checks every parameter of `parallel` against the gradient of the same name in `reference`:
// a piece against its slice, a replicated parameter against the whole (summed over the group when
// sequence parallelism leaves it partial).
void expect_parameter_gradients(const nn::Module& parallel, const nn::Module& reference,
                                const TensorParallelContext& context) {
  std::map<std::string, std::vector<float>> want;
  for (const auto& p : reference.named_parameters()) want[p.name] = p.tensor.grad().to_float_vector();
  for (const auto& p : parallel.named_parameters()) {
    ASSERT_TRUE(want.count(p.name)) << p.name;
    // A piece holds 1/tp of its logical tensor, a replicated parameter all of it.
    EXPECT_EQ(p.tensor.numel() * (p.shard ? context.size() : 1), static_cast<int64_t>(want.at(p.name).size())) << p.name;
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    const bool partial = context.sequence_parallel_enabled() && !p.shard;
    const std::vector<float> got = partial ? summed_over_group(p.tensor.grad(), *context.group)
                                           : p.tensor.grad().to_float_vector();
    expect_close(got, piece_of(want.at(p.name), p), kRtol, "gradient of " + p.name);
  }
}

class TensorParallelLayers : public ::testing::TestWithParam<bool> {
 protected:
  bool sequence_parallel() const { return GetParam(); }
  TensorParallelContext context() const { return testing::world_tensor_parallel(sequence_parallel()); }
  int ranks() const { return context().size(); }
  int rank() const { return context().rank(); }

  // Input (B, T, C) the same on every rank, and the rank's view of it: the whole, or its positions
  // under sequence parallelism.
  Shape hidden_shape() const { return {kBatch, kSeqLen, kChannels}; }
  std::vector<float> local_of(const std::vector<float>& whole, const Shape& shape) const {
    return sequence_parallel() ? chunk_of(whole, shape, 1, ranks(), rank()) : whole;
  }
  Shape local_shape(Shape shape) const {
    if (sequence_parallel()) shape[1] /= ranks();
    return shape;
  }

  // Runs `parallel_forward` on the rank's input and `reference_forward` on the whole input, with the
  // same upstream gradient (sliced for the rank), and compares outputs and input gradients.
  template <class ParallelForward, class ReferenceForward>
  void check_hidden_to_hidden(ParallelForward parallel_forward, ReferenceForward reference_forward,
                              uint32_t seed) {
    const Shape shape = hidden_shape();
    const std::vector<float> x_whole = random_values(shape_numel(shape), seed);
    const std::vector<float> upstream = random_values(shape_numel(shape), seed + 1);
    Tensor x_reference = leaf(x_whole, shape);
    Tensor y_reference = reference_forward(x_reference);
    y_reference.backward(Tensor::from_vector<float>(upstream, shape));

    Tensor x = leaf(local_of(x_whole, shape), local_shape(shape));
    Tensor y = parallel_forward(x);
    ASSERT_EQ(y.shape(), local_shape(shape));
    expect_close(y.to_float_vector(), local_of(y_reference.to_float_vector(), shape), kRtol, "output");
    y.backward(Tensor::from_vector<float>(local_of(upstream, shape), local_shape(shape)));
    expect_close(x.grad().to_float_vector(), local_of(x_reference.grad().to_float_vector(), shape), kRtol,
                 "input gradient");
  }
};

TEST_P(TensorParallelLayers, ColumnParallelLinearHoldsOutputRowsOfTheLinear) {
  const int64_t out_features = 4 * kChannels;
  nn::Linear reference(kChannels, out_features, true, 0.02f);
  ColumnParallelLinear layer(kChannels, out_features, 0.02f, context());
  reference.initialize(kSeed);
  layer.initialize(kSeed);
  const Shape shape = hidden_shape();
  const std::vector<float> x_whole = random_values(shape_numel(shape), 1);
  Tensor x_reference = leaf(x_whole, shape);
  Tensor y_reference = reference.forward(x_reference);
  const Shape out_shape{kBatch, kSeqLen, out_features};
  const std::vector<float> upstream = random_values(shape_numel(out_shape), 2);
  y_reference.backward(Tensor::from_vector<float>(upstream, out_shape));

  Tensor x = leaf(local_of(x_whole, shape), local_shape(shape));
  Tensor y = layer.forward(x);
  const Shape local_out{kBatch, kSeqLen, out_features / ranks()};
  ASSERT_EQ(y.shape(), local_out);
  expect_close(y.to_float_vector(), chunk_of(y_reference.to_float_vector(), out_shape, -1, ranks(), rank()), kRtol,
               "output columns");
  y.backward(Tensor::from_vector<float>(chunk_of(upstream, out_shape, -1, ranks(), rank()), local_out));
  expect_close(x.grad().to_float_vector(), local_of(x_reference.grad().to_float_vector(), shape), kRtol,
               "input gradient");
  expect_parameter_gradients(layer, reference, context());
}

TEST_P(TensorParallelLayers, ColumnParallelLinearInThreePartsHoldsTheSameRowsOfEachPart) {
  // The fused qkv layout: rank r holds rows [r·C/tp, (r+1)·C/tp) of q, of k and of v.
  nn::Linear reference(kChannels, 3 * kChannels, true, 0.02f);
  ColumnParallelLinear layer(kChannels, 3 * kChannels, 0.02f, context(), ColumnParallelOptions{true, 3, true});
  reference.initialize(kSeed);
  layer.initialize(kSeed);
  const int64_t part = kChannels / ranks();
  const std::vector<float> w_whole = reference.weight().to_float_vector();
  std::vector<float> want;
  for (int64_t p = 0; p < 3; ++p)
    for (int64_t row = 0; row < part; ++row)
      for (int64_t c = 0; c < kChannels; ++c)
        want.push_back(w_whole[static_cast<size_t>((p * kChannels + rank() * part + row) * kChannels + c)]);
  EXPECT_EQ(layer.weight().to_float_vector(), want);

  // gather_output concatenates the ranks' [q|k|v] blocks, rank after rank: the logical columns in
  // that order.
  const Shape shape = hidden_shape();
  const std::vector<float> x_whole = random_values(shape_numel(shape), 3);
  Tensor y = layer.forward(leaf(local_of(x_whole, shape), local_shape(shape)));
  const std::vector<float> y_reference = reference.forward(leaf(x_whole, shape)).to_float_vector();
  const Shape out_shape{kBatch, kSeqLen, 3 * kChannels};
  ASSERT_EQ(y.shape(), out_shape);
  // Column j of rank r's block p·part + i is logical column p·C + r·part + i.
  std::vector<float> reordered(y_reference.size());
  const int64_t rows = kBatch * kSeqLen;
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t r = 0; r < ranks(); ++r)
      for (int64_t p = 0; p < 3; ++p)
        for (int64_t i = 0; i < part; ++i)
          reordered[static_cast<size_t>(n * 3 * kChannels + r * 3 * part + p * part + i)] =
              y_reference[static_cast<size_t>(n * 3 * kChannels + p * kChannels + r * part + i)];
  expect_close(y.to_float_vector(), reordered, kRtol, "gathered qkv output");
}

TEST_P(TensorParallelLayers, RowParallelLinearSumsInputColumnSlicesOfTheLinear) {
  const int64_t in_features = 4 * kChannels;
  nn::Linear reference(in_features, kChannels, true, 0.02f);
  RowParallelLinear layer(in_features, kChannels, 0.02f, context());
  reference.initialize(kSeed);
  layer.initialize(kSeed);
  // Non-zero biases, so that adding the bias once (not once per rank) is checked.
  const Tensor bias = Tensor::from_vector<float>(random_values(kChannels, 4), {kChannels});
  for (Tensor target : {reference.bias(), layer.bias()}) target.copy_(bias);

  const Shape in_shape{kBatch, kSeqLen, in_features};
  const std::vector<float> x_whole = random_values(shape_numel(in_shape), 5);
  Tensor x_reference = leaf(x_whole, in_shape);
  Tensor y_reference = reference.forward(x_reference);
  const Shape shape = hidden_shape();
  const std::vector<float> upstream = random_values(shape_numel(shape), 6);
  y_reference.backward(Tensor::from_vector<float>(upstream, shape));

  const Shape local_in{kBatch, kSeqLen, in_features / ranks()};
  Tensor x = leaf(chunk_of(x_whole, in_shape, -1, ranks(), rank()), local_in);
  Tensor y = layer.forward(x);
  ASSERT_EQ(y.shape(), local_shape(shape));
  expect_close(y.to_float_vector(), local_of(y_reference.to_float_vector(), shape), kRtol, "output");
  y.backward(Tensor::from_vector<float>(local_of(upstream, shape), local_shape(shape)));
  expect_close(x.grad().to_float_vector(), chunk_of(x_reference.grad().to_float_vector(), in_shape, -1, ranks(), rank()),
               kRtol, "input gradient");
  expect_parameter_gradients(layer, reference, context());
}

TEST_P(TensorParallelLayers, VocabParallelEmbeddingLooksUpItsRowsAndSumsOverTheGroup) {
  const int64_t vocab = 37, padded = 64;
  nn::Embedding reference(padded, kChannels, 0.02f, vocab);
  VocabParallelEmbedding layer(padded, kChannels, 0.02f, vocab, context());
  reference.initialize(kSeed);
  layer.initialize(kSeed);
  std::vector<int32_t> ids(kBatch * kSeqLen);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 11 + 5) % vocab);  // every slice
  const Tensor id_tensor = Tensor::from_vector<int32_t>(ids, {kBatch, kSeqLen});
  const Shape shape = hidden_shape();
  const std::vector<float> upstream = random_values(shape_numel(shape), 7);
  Tensor y_reference = reference.forward(id_tensor);
  y_reference.backward(Tensor::from_vector<float>(upstream, shape));

  Tensor y = layer.forward(id_tensor);
  ASSERT_EQ(y.shape(), local_shape(shape));
  expect_close(y.to_float_vector(), local_of(y_reference.to_float_vector(), shape), kRtol, "embeddings");
  y.backward(Tensor::from_vector<float>(local_of(upstream, shape), local_shape(shape)));
  expect_parameter_gradients(layer, reference, context());
  EXPECT_THROW(layer.forward(Tensor::from_vector<int32_t>({0, static_cast<int32_t>(padded)}, {1, 2})), Error);
}

TEST_P(TensorParallelLayers, VocabParallelCrossEntropyEqualsTheLossOnTheWholeLogits) {
  // 37 real columns of 64: at tp = 4 the last rank's slice is all padding, at tp = 2 the second
  // slice is mostly padding. Row 3 is ignored.
  const int64_t vocab = 37, padded = 64, rows = kBatch * kSeqLen;
  const std::vector<float> logits_whole = random_values(rows * padded, 8, 3.0f);
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) targets[static_cast<size_t>(i)] = static_cast<int32_t>((i * 13 + 2) % vocab);
  targets[3] = -1;
  const Tensor target_tensor = Tensor::from_vector<int32_t>(targets, {kBatch, kSeqLen});
  const Shape shape{kBatch, kSeqLen, padded};
  Tensor reference_logits = leaf(logits_whole, shape);
  Tensor reference_loss = fn::cross_entropy(reference_logits, target_tensor, vocab);
  reference_loss.backward();

  const Shape local{kBatch, kSeqLen, padded / ranks()};
  Tensor logits = leaf(chunk_of(logits_whole, shape, -1, ranks(), rank()), local);
  Tensor loss = vocab_parallel_cross_entropy(logits, target_tensor, vocab, context());
  EXPECT_NEAR(loss.item<float>(), reference_loss.item<float>(), kRtol * reference_loss.item<float>());
  loss.backward();
  expect_close(logits.grad().to_float_vector(),
               chunk_of(reference_logits.grad().to_float_vector(), shape, -1, ranks(), rank()), kRtol,
               "logit gradient");
}

TEST_P(TensorParallelLayers, ParallelAttentionSplitsWholeHeads) {
  nn::CausalSelfAttention reference(kChannels, kHeads, 0.02f, 0.01f);
  ParallelAttention layer(kChannels, kHeads, 0.02f, 0.01f, context());
  reference.initialize(kSeed);
  layer.initialize(kSeed);
  check_hidden_to_hidden([&](const Tensor& x) { return layer.forward(x); },
                         [&](const Tensor& x) { return reference.forward(x); }, 9);
  expect_parameter_gradients(layer, reference, context());
}

TEST_P(TensorParallelLayers, ParallelMlpIsColumnThenRowParallel) {
  nn::Mlp reference(kChannels, 0.02f, 0.01f);
  ParallelMlp layer(kChannels, 0.02f, 0.01f, context());
  reference.initialize(kSeed);
  layer.initialize(kSeed);
  check_hidden_to_hidden([&](const Tensor& x) { return layer.forward(x); },
                         [&](const Tensor& x) { return reference.forward(x); }, 11);
  expect_parameter_gradients(layer, reference, context());
}

TEST_P(TensorParallelLayers, ParallelBlockWithRecomputeMatchesTheBlock) {
  nn::Block reference(kChannels, kHeads, 0.02f, 0.01f);
  ParallelBlock layer(kChannels, kHeads, 0.02f, 0.01f, context());
  reference.initialize(kSeed);
  layer.initialize(kSeed);
  check_hidden_to_hidden([&](const Tensor& x) { return layer.forward(x, true); },
                         [&](const Tensor& x) { return reference.forward(x); }, 13);
  expect_parameter_gradients(layer, reference, context());
}

INSTANTIATE_TEST_SUITE_P(SequenceParallel, TensorParallelLayers, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                           return param_info.param ? "sequence_parallel" : "tensor_parallel";
                         });

TEST(TensorParallelLayerErrors, NameTheSplitThatDoesNotDivide) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  const TensorParallelContext context = testing::world_tensor_parallel();
  const int64_t odd = 2 * context.size() + 1;
  EXPECT_THROW(ColumnParallelLinear(8, odd, 0.02f, context), Error);
  EXPECT_THROW(RowParallelLinear(odd, 8, 0.02f, context), Error);
  EXPECT_THROW(ParallelAttention(odd * 4, odd, 0.02f, 0.01f, context), Error);
  EXPECT_THROW(VocabParallelEmbedding(odd, 8, 0.02f, odd, context), Error);
}

}  // namespace
}  // namespace meridian::parallel

// The seven tensor-parallel maps on the whole world as one tensor-parallel group, with rank-seeded
// data (nccl-tests' InitData): every value is a small multiple of 1/4, so sums over ranks are exact
// and results are compared for equality.
#include "parallel/tensor_parallel/mappings.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "tensor_parallel_test_support.h"

namespace meridian::parallel {
namespace {

using testing::chunk_of;

constexpr int64_t kBatch = 2, kPositionsPerRank = 3, kChannelsPerRank = 5;

// Rank `rank`'s value at `index` of a tensor tagged `tag`.
float seeded(int rank, int64_t index, int tag) {
  return 0.25f * static_cast<float>((rank + 1) * 7 + index % 13 + tag * 3 - 11);
}

std::vector<float> seeded_values(int rank, int64_t n, int tag) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = seeded(rank, i, tag);
  return v;
}

std::vector<float> sum_over_ranks(int ranks, int64_t n, int tag) {
  std::vector<float> v(static_cast<size_t>(n), 0.0f);
  for (int r = 0; r < ranks; ++r)
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] += seeded(r, i, tag);
  return v;
}

// The ranks' chunks of shape `chunk_shape` concatenated along `axis`.
std::vector<float> concatenated(int ranks, const Shape& chunk_shape, int axis, int tag) {
  Shape whole = chunk_shape;
  const size_t a = static_cast<size_t>(axis < 0 ? axis + static_cast<int>(whole.size()) : axis);
  whole[a] *= ranks;
  std::vector<float> out(static_cast<size_t>(shape_numel(whole)));
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < a; ++d) outer *= whole[d];
  for (size_t d = a + 1; d < whole.size(); ++d) inner *= whole[d];
  const int64_t chunk = chunk_shape[a] * inner;
  for (int r = 0; r < ranks; ++r)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < chunk; ++j)
        out[static_cast<size_t>((o * ranks + r) * chunk + j)] = seeded(r, o * chunk + j, tag);
  return out;
}

Tensor leaf(const std::vector<float>& values, const Shape& shape) {
  Tensor t = Tensor::from_vector<float>(values, shape);
  t.set_requires_grad(true);
  return t;
}

class TensorParallelMaps : public ::testing::Test {
 protected:
  const GroupPtr group = meridian::testing::runtime().world();
  const int ranks = group->size();
  const int rank = group->rank();
  const Shape hidden_piece{kBatch, 4, kChannelsPerRank};              // (B, T, C/tp)
  const Shape hidden_whole{kBatch, 4, kChannelsPerRank * ranks};      // (B, T, C)
  const Shape sequence_piece{kBatch, kPositionsPerRank, 6};           // (B, T/tp, C)
  const Shape sequence_whole{kBatch, kPositionsPerRank * ranks, 6};   // (B, T, C)
};

TEST_F(TensorParallelMaps, CopyIsIdentityForwardAndSumsGradientsBackward) {
  const int64_t n = shape_numel(hidden_whole);
  Tensor x = leaf(seeded_values(0, n, 1), hidden_whole);  // replicated input
  Tensor out = copy_to_tensor_parallel_region(x, group);
  EXPECT_EQ(out.to_float_vector(), x.to_float_vector());
  out.backward(Tensor::from_vector<float>(seeded_values(rank, n, 2), hidden_whole));
  EXPECT_EQ(x.grad().to_float_vector(), sum_over_ranks(ranks, n, 2));
}

TEST_F(TensorParallelMaps, ReduceSumsForwardAndPassesGradientsBackward) {
  const int64_t n = shape_numel(hidden_whole);
  Tensor x = leaf(seeded_values(rank, n, 3), hidden_whole);
  Tensor out = reduce_from_tensor_parallel_region(x, group);
  EXPECT_EQ(out.to_float_vector(), sum_over_ranks(ranks, n, 3));
  const std::vector<float> upstream = seeded_values(rank, n, 4);
  out.backward(Tensor::from_vector<float>(upstream, hidden_whole));
  EXPECT_EQ(x.grad().to_float_vector(), upstream);
}

TEST_F(TensorParallelMaps, ScatterKeepsOwnLastAxisSliceAndGathersGradients) {
  const std::vector<float> whole = seeded_values(0, shape_numel(hidden_whole), 5);
  Tensor x = leaf(whole, hidden_whole);
  Tensor out = scatter_to_tensor_parallel_region(x, group);
  EXPECT_EQ(out.shape(), hidden_piece);
  EXPECT_EQ(out.to_float_vector(), chunk_of(whole, hidden_whole, -1, ranks, rank));
  out.backward(Tensor::from_vector<float>(seeded_values(rank, shape_numel(hidden_piece), 6), hidden_piece));
  EXPECT_EQ(x.grad().to_float_vector(), concatenated(ranks, hidden_piece, -1, 6));
}

TEST_F(TensorParallelMaps, GatherConcatenatesLastAxisAndKeepsOwnGradientSlice) {
  Tensor x = leaf(seeded_values(rank, shape_numel(hidden_piece), 7), hidden_piece);
  Tensor out = gather_from_tensor_parallel_region(x, group);
  EXPECT_EQ(out.shape(), hidden_whole);
  EXPECT_EQ(out.to_float_vector(), concatenated(ranks, hidden_piece, -1, 7));
  const std::vector<float> upstream = seeded_values(0, shape_numel(hidden_whole), 8);
  out.backward(Tensor::from_vector<float>(upstream, hidden_whole));
  EXPECT_EQ(x.grad().to_float_vector(), chunk_of(upstream, hidden_whole, -1, ranks, rank));
}

TEST_F(TensorParallelMaps, SequenceScatterKeepsOwnPositionsAndGathersGradients) {
  const std::vector<float> whole = seeded_values(0, shape_numel(sequence_whole), 9);
  Tensor x = leaf(whole, sequence_whole);
  Tensor out = scatter_to_sequence_parallel_region(x, group);
  EXPECT_EQ(out.shape(), sequence_piece);
  EXPECT_EQ(out.to_float_vector(), chunk_of(whole, sequence_whole, 1, ranks, rank));
  out.backward(Tensor::from_vector<float>(seeded_values(rank, shape_numel(sequence_piece), 10), sequence_piece));
  EXPECT_EQ(x.grad().to_float_vector(), concatenated(ranks, sequence_piece, 1, 10));
}

TEST_F(TensorParallelMaps, SequenceGatherConcatenatesPositionsAndReduceScattersGradients) {
  Tensor x = leaf(seeded_values(rank, shape_numel(sequence_piece), 11), sequence_piece);
  Tensor out = gather_from_sequence_parallel_region(x, group);
  EXPECT_EQ(out.shape(), sequence_whole);
  EXPECT_EQ(out.to_float_vector(), concatenated(ranks, sequence_piece, 1, 11));
  const int64_t n = shape_numel(sequence_whole);
  out.backward(Tensor::from_vector<float>(seeded_values(rank, n, 12), sequence_whole));
  EXPECT_EQ(x.grad().to_float_vector(), chunk_of(sum_over_ranks(ranks, n, 12), sequence_whole, 1, ranks, rank));
}

TEST_F(TensorParallelMaps, SequenceReduceScatterSumsOwnPositionsAndGathersGradients) {
  const int64_t n = shape_numel(sequence_whole);
  Tensor x = leaf(seeded_values(rank, n, 13), sequence_whole);
  Tensor out = reduce_scatter_to_sequence_parallel_region(x, group);
  EXPECT_EQ(out.shape(), sequence_piece);
  EXPECT_EQ(out.to_float_vector(), chunk_of(sum_over_ranks(ranks, n, 13), sequence_whole, 1, ranks, rank));
  out.backward(Tensor::from_vector<float>(seeded_values(rank, shape_numel(sequence_piece), 14), sequence_piece));
  EXPECT_EQ(x.grad().to_float_vector(), concatenated(ranks, sequence_piece, 1, 14));
}

// Under bf16 mixed precision the maps move and sum bf16 activations and gradients; with the seeded
// values (small multiples of 1/4, exact in bf16, and so are their sums over a few ranks) every map
// gives exactly what it gives in f32, in bf16.
TEST_F(TensorParallelMaps, MoveAndSumBf16Activations) {
  const auto bf16_leaf = [](const std::vector<float>& values, const Shape& shape) {
    Tensor t = Tensor::from_vector<float>(values, shape).to(DType::bf16);
    t.set_requires_grad(true);
    return t;
  };
  const auto bf16 = [](const std::vector<float>& values, const Shape& shape) {
    return Tensor::from_vector<float>(values, shape).to(DType::bf16);
  };
  {
    Tensor x = bf16_leaf(seeded_values(rank, shape_numel(sequence_piece), 17), sequence_piece);
    Tensor out = gather_from_sequence_parallel_region(x, group);
    EXPECT_EQ(out.dtype(), DType::bf16);
    EXPECT_EQ(out.to_float_vector(), concatenated(ranks, sequence_piece, 1, 17));
    const int64_t n = shape_numel(sequence_whole);
    out.backward(bf16(seeded_values(rank, n, 18), sequence_whole));
    EXPECT_EQ(x.grad().dtype(), DType::bf16);
    EXPECT_EQ(x.grad().to_float_vector(), chunk_of(sum_over_ranks(ranks, n, 18), sequence_whole, 1, ranks, rank));
  }
  {
    const int64_t n = shape_numel(hidden_whole);
    Tensor x = bf16_leaf(seeded_values(rank, n, 19), hidden_whole);
    Tensor out = reduce_from_tensor_parallel_region(x, group);
    EXPECT_EQ(out.to_float_vector(), sum_over_ranks(ranks, n, 19));
    Tensor piece = bf16_leaf(seeded_values(rank, shape_numel(hidden_piece), 20), hidden_piece);
    Tensor gathered = gather_from_tensor_parallel_region(piece, group);
    EXPECT_EQ(gathered.to_float_vector(), concatenated(ranks, hidden_piece, -1, 20));
  }
}

TEST_F(TensorParallelMaps, AreTheIdentityWithoutAGroup) {
  Tensor x = leaf(seeded_values(0, 12, 15), {2, 2, 3});
  EXPECT_TRUE(copy_to_tensor_parallel_region(x, nullptr).same_impl(x));
  EXPECT_TRUE(reduce_from_tensor_parallel_region(x, nullptr).same_impl(x));
  EXPECT_TRUE(gather_from_sequence_parallel_region(x, nullptr).same_impl(x));
}

TEST_F(TensorParallelMaps, RejectAnAxisTheGroupDoesNotDivide) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  Tensor x = leaf(seeded_values(0, 2 * (ranks + 1) * 3, 16), {2, ranks + 1, 3});
  EXPECT_THROW(scatter_to_sequence_parallel_region(x, group), Error);
}

}  // namespace
// A cuda tensor given to a map over an MPI group fails naming the map, the device and the group's
// backend, before anything reads it (host memory labelled cuda:0 stands in: no GPU needed). Every
// rank throws the same error, so no rank waits in a collective.
TEST_F(TensorParallelMaps, CudaTensorsNeedAnNcclGroup) {
  if (ranks == 1) GTEST_SKIP() << "a one-rank group maps nothing";
  std::vector<double> memory(64);
  auto storage = std::make_shared<Storage>(memory.data(), memory.size() * sizeof(double), Device::cuda(0), nullptr);
  const Tensor x = Tensor::from_storage(storage, {2, 3, 4}, DType::f32);
  try {
    reduce_from_tensor_parallel_region(x, group);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const char* part : {"reduce_from_tensor_parallel_region", "cuda:0", "is mpi", "an NCCL group"})
      EXPECT_NE(message.find(part), std::string::npos) << part << " not in: " << message;
  }
}

}  // namespace meridian::parallel

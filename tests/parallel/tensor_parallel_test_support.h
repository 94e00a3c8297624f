#pragma once
// Helpers for the tensor-parallel tests: the tensor-parallel group of the whole world, the slice of
// an unsharded value that a rank's piece should hold, (the closeness check is gpt2_parity_support.h's).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/init.h"
#include "gpt2_parity_support.h"
#include "core/nn/module.h"
#include "launcher/testing/mpi_test_environment.h"
#include "parallel/tensor_parallel/tensor_parallel_context.h"

namespace meridian::parallel::testing {

// Every rank of the job in one tensor-parallel group.
inline TensorParallelContext world_tensor_parallel(bool sequence_parallel = false) {
  return {meridian::testing::runtime().world(), sequence_parallel};
}

// The values of the logical tensor `whole` that `piece` holds (all of them when it is not sharded).
inline std::vector<float> piece_of(const std::vector<float>& whole, const nn::NamedParameter& piece) {
  const ShardRuns runs = shard_runs(piece.tensor.shape(), piece.shard ? &*piece.shard : nullptr, piece.name);
  std::vector<float> out;
  for (int64_t start : runs.starts) out.insert(out.end(), whole.begin() + start, whole.begin() + start + runs.length);
  return out;
}

// Chunk `part` of `parts` along `axis` of a contiguous tensor of `shape` given as values.
inline std::vector<float> chunk_of(const std::vector<float>& values, const Shape& shape, int axis, int64_t parts,
                                   int64_t part) {
  const size_t a = static_cast<size_t>(axis < 0 ? axis + static_cast<int>(shape.size()) : axis);
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < a; ++d) outer *= shape[d];
  for (size_t d = a + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t chunk = shape[a] / parts * inner;
  std::vector<float> out;
  for (int64_t o = 0; o < outer; ++o) {
    const auto begin = values.begin() + (o * parts + part) * chunk;
    out.insert(out.end(), begin, begin + chunk);
  }
  return out;
}


}  // namespace meridian::parallel::testing

#pragma once
// Helpers for the tensor-parallel tests: the tensor-parallel group of the whole world, the slice of
// an unsharded value that a rank's piece should hold, and a closeness check.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/init.h"
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

// |got − want| ≤ rtol·(max|want| + |want|) elementwise: float32 rounding of sums taken in another
// order (the ranks' partial products) stays within a few 1e-7 of the scale.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rtol,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0.0;
  for (float v : want) scale = std::max(scale, static_cast<double>(std::abs(v)));
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::abs(got[i] - want[i]) <= rtol * (scale + std::abs(want[i]))) continue;
    if (++bad <= 5) ADD_FAILURE() << what << " element " << i << ": got " << got[i] << ", want " << want[i];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.size() << " elements differ";
}

}  // namespace meridian::parallel::testing

// Tensor-parallel GPT-2 (with and without sequence parallelism, alone and with data parallelism on
// the same grid) against one process on the same global batch: every rank also trains a local
// single-process reference and compares the loss and gradient norm of every step, every shard's
// gradient with the matching slice of the reference gradient, and the weights after training.
// The vocabulary (61, padded to 66) divides by no tp: tp = 2 splits 66 into two slices of 33,
// tp = 4 pads it further to 512 (vocab_padding.h), leaving three slices of padding only.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/functions/functions.h"
#include "core/io/data_loader.h"
#include "core/optim/lr_schedule.h"
#include "models/gpt2.h"
#include "parallel/data_parallel/data_parallel.h"
#include "parallel/process_grid.h"
#include "tensor_parallel_test_support.h"

namespace meridian::parallel {
namespace {

using testing::by_name;
using testing::expect_close;
using testing::piece_of;
using testing::synthetic_tokens;
using testing::tiny_gpt2;

constexpr int64_t kMicroBatch = 2, kSeqLen = 8, kSteps = 10;
constexpr double kLossTolerance = 1e-5;  // relative, per step

// What `piece` should hold of the reference's logical tensor `whole`. The tp model may pad the
// vocabulary further than the reference: those wte rows are zero.
std::vector<float> expected_piece(std::vector<float> whole, const nn::NamedParameter& piece) {
  whole.resize(static_cast<size_t>(logical_numel(piece.tensor.shape(), piece.shard ? &*piece.shard : nullptr)), 0.0f);
  return piece_of(whole, piece);
}

// The logical index of each element of `piece`.
std::vector<int64_t> logical_indices(const nn::NamedParameter& piece) {
  const ShardRuns runs = shard_runs(piece.tensor.shape(), piece.shard ? &*piece.shard : nullptr, piece.name);
  std::vector<int64_t> out;
  for (int64_t start : runs.starts)
    for (int64_t j = 0; j < runs.length; ++j) out.push_back(start + j);
  return out;
}

struct Layout {
  int tp;
  int dp;
  bool sequence_parallel;
  int zero_stage;
  int64_t grad_accum;
};

class TensorParallelParity : public ::testing::TestWithParam<Layout> {};

TEST_P(TensorParallelParity, MatchesOneProcessOnTheGlobalBatch) {
  const Layout layout = GetParam();
  auto world = meridian::testing::runtime().world();
  if (world->size() != layout.tp * layout.dp)
    GTEST_SKIP() << "needs " << layout.tp * layout.dp << " ranks, the world has " << world->size();
  ProcessGrid grid(world, {layout.tp, layout.dp, 1});
  const int64_t D = layout.dp, K = layout.grad_accum;
  const optim::LrSchedule schedule{1e-2f, 2, kSteps, optim::LrDecay::cosine, 0.1f};
  const optim::AdamWOptions adamw{0.9f, 0.95f, 1e-8f, 0.1f};
  const float clip = 0.5f;  // small enough that clipping is active on some steps

  models::Gpt2 reference(tiny_gpt2(2, 4, 66));
  reference.initialize(11);
  const auto initial = by_name(reference, false);
  optim::AdamW reference_optimizer(optim::optimizer_params(reference.named_parameters()), adamw);
  io::DataLoader reference_data(synthetic_tokens(), {kMicroBatch * D, kSeqLen, 1, 0, K, false, 0});

  models::Gpt2 model(tiny_gpt2(2, 4, 66), {}, {grid.group_ptr(Axis::tp), layout.sequence_parallel});
  model.initialize(11);
  EXPECT_EQ(model.config().padded_vocab_size, layout.tp == 4 ? 512 : 66);
  // Layout-independent initialisation: every piece starts as its slice of the reference.
  for (const auto& p : model.named_parameters())
    EXPECT_EQ(p.tensor.to_float_vector(), expected_piece(initial.at(p.name), p)) << p.name;

  DataParallelOptions options;
  options.bucket_bytes = 4096;
  options.zero_stage = layout.zero_stage;
  options.tensor_parallel_group = grid.group_ptr(Axis::tp);
  options.sequence_parallel = layout.sequence_parallel;
  DataParallel dp(model.named_parameters(), grid.group_ptr(Axis::dp), options);
  optim::AdamW optimizer(dp.optimizer_params(), adamw);
  io::DataLoader data(synthetic_tokens(), {kMicroBatch, kSeqLen, D, grid.coordinate(Axis::dp), K, false, 0});

  int clipped_steps = 0;
  for (int64_t step = 0; step < kSteps; ++step) {
    reference_optimizer.zero_grad();
    const double reference_loss = testing::accumulate_step(reference, reference_data, step, K);
    const double reference_norm = testing::grad_norm_of(reference);

    dp.zero_grad();
    const double local_loss = testing::accumulate_step(model, data, step, K, &dp);
    Tensor loss_tensor = Tensor::full({1}, local_loss);
    grid.dp().all_reduce(loss_tensor, comm::ReduceOp::avg)->wait();
    const double norm = dp.grad_norm();
    EXPECT_NEAR(loss_tensor.item<double>(), reference_loss, kLossTolerance * reference_loss) << "step " << step;
    EXPECT_NEAR(norm, reference_norm, 1e-5 * reference_norm) << "step " << step;
    clipped_steps += reference_norm > clip;

    if (step == 0) {
      // Every shard's gradient (after the tp sum of sequence-parallel gradients and the dp
      // reduction) is its slice of the single-process gradient; under ZeRO, the part this rank owns.
      const auto want = by_name(reference, true);
      std::map<std::string, nn::NamedParameter> pieces;
      for (const auto& p : model.named_parameters()) pieces.emplace(p.name, p);
      if (layout.zero_stage == 0) {
        for (const auto& [name, piece] : pieces)
          expect_close(piece.tensor.grad().to_float_vector(), expected_piece(want.at(name), piece), 1e-5, name);
      } else {
        for (const auto& owned : dp.optimizer_params()) {
          const size_t open = owned.name.find('['), colon = owned.name.find(':');
          const std::string name = owned.name.substr(0, open);
          const int64_t begin = std::stoll(owned.name.substr(open + 1, colon - open - 1));
          const std::vector<float> slice = expected_piece(want.at(name), pieces.at(name));
          expect_close(owned.param.grad().to_float_vector(),
                       std::vector<float>(slice.begin() + begin, slice.begin() + begin + owned.param.numel()), 1e-5,
                       owned.name);
        }
      }
    }

    const float lr = schedule.at(step);
    reference_optimizer.step(lr, optim::clip_coefficient(reference_norm, clip));
    optimizer.step(lr, optim::clip_coefficient(norm, clip));
    dp.after_optimizer_step();
  }
  EXPECT_GT(clipped_steps, 0) << "clipping never engaged: the norm across tp is not exercised";

  // Weights after training, as in the data-parallel test: ‖w − w_ref‖ ≤ 1e-3·‖w_ref − w_init‖ per
  // tensor. The key third of the qkv bias (logical [C, 2C)) has an identically zero gradient — it
  // adds q·b to every score of a row, which the softmax cancels — so it only receives rounding noise
  // that Adam turns into lr-sized steps differing between any two summation orders: left out.
  // Padded vocabulary rows must still be exactly zero.
  const auto want = by_name(reference, false);
  const int64_t C = tiny_gpt2(2, 4, 66).channels;
  for (const auto& p : model.named_parameters()) {
    const std::vector<float> values = p.tensor.to_float_vector();
    const std::vector<float> ref = expected_piece(want.at(p.name), p);
    const std::vector<float> init = expected_piece(initial.at(p.name), p);
    const std::vector<int64_t> index = logical_indices(p);
    const bool qkv_bias = p.name.ends_with("attn.c_attn.bias");
    const bool wte = p.name == "wte.weight";
    double diff = 0.0, moved = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
      if (qkv_bias && index[i] >= C && index[i] < 2 * C) continue;
      if (wte && index[i] >= tiny_gpt2(2, 4, 66).vocab_size * C) {
        EXPECT_EQ(values[i], 0.0f) << "padded row of wte at logical index " << index[i];
        continue;
      }
      diff += std::pow(static_cast<double>(values[i]) - ref[i], 2);
      moved += std::pow(static_cast<double>(ref[i]) - init[i], 2);
    }
    EXPECT_LE(std::sqrt(diff), 1e-3 * std::sqrt(moved)) << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, TensorParallelParity,
                         ::testing::Values(Layout{2, 1, false, 0, 1}, Layout{2, 1, true, 0, 1},
                                           Layout{2, 1, true, 2, 2}, Layout{4, 1, false, 0, 1},
                                           Layout{4, 1, true, 0, 1}, Layout{2, 2, false, 0, 1},
                                           Layout{2, 2, true, 0, 1}, Layout{2, 2, true, 1, 2},
                                           Layout{2, 2, false, 2, 1}),
                         [](const ::testing::TestParamInfo<Layout>& param_info) {
                           const Layout& l = param_info.param;
                           return "tp" + std::to_string(l.tp) + "_dp" + std::to_string(l.dp) +
                                  (l.sequence_parallel ? "_sp" : "") + "_zero" + std::to_string(l.zero_stage) +
                                  "_accum" + std::to_string(l.grad_accum);
                         });

TEST(TensorParallelGpt2, SequenceParallelNeedsTheSequenceLengthDivisibleByTp) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  models::Gpt2 model(tiny_gpt2(2, 4, 66), {}, testing::world_tensor_parallel(true));
  const int64_t T = meridian::testing::runtime().world_size() + 1;
  std::vector<int32_t> ids(static_cast<size_t>(T), 1);
  EXPECT_THROW(model.embed(Tensor::from_vector<int32_t>(ids, {1, T})), Error);
}

TEST(TensorParallelGpt2, RejectsHeadsTheGroupDoesNotDivide) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  models::Gpt2Config config = tiny_gpt2(2, 4, 66);
  config.num_heads = meridian::testing::runtime().world_size() + 1;  // 3 or 5 heads of 16 channels...
  config.channels = config.num_heads * 4;
  EXPECT_THROW(models::Gpt2(config, {}, testing::world_tensor_parallel()), Error);
}

}  // namespace
}  // namespace meridian::parallel

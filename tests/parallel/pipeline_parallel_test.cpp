// Pipeline parallelism against one process on the same global batch: every rank also trains a local
// single-process reference (batch D·B) and compares the loss and gradient norm of every step (with
// clipping active), the gradients after the first step and the weights after the last, for every
// schedule at pp = 2 and 4, composed with data parallelism and ZeRO, with the deferred weight
// gradients of zb-h1; and the activation counter: 1F1B keeps at most pp micro-batches alive on the
// first stage where GPipe keeps all M.
#include "parallel/pipeline/pipeline_parallel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/allocator.h"
#include "core/functions/functions.h"
#include "core/io/data_loader.h"
#include "core/optim/lr_schedule.h"
#include "launcher/testing/mpi_test_environment.h"
#include "models/gpt2.h"
#include "models/gpt2_pipeline.h"
#include "parallel/pipeline/schedule_simulation.h"
#include "parallel/pipeline/stage_partition.h"
#include "gpt2_parity_support.h"

namespace meridian::parallel {
namespace {

using testing::by_name;
using testing::expect_close;
using testing::synthetic_tokens;
using testing::tiny_gpt2;

constexpr int64_t kSeqLen = 8, kSteps = 10;
constexpr double kTolerance = 1e-5;  // relative, per step

// This rank's model chunks of a pipelined GPT-2, and the pipeline over them.
struct PipelinedGpt2 {
  std::vector<std::unique_ptr<models::Gpt2PipelineChunk>> chunks;
  std::unique_ptr<PipelineParallel> pipeline;

  PipelinedGpt2(const ProcessGrid& grid, const models::Gpt2Config& config, PipelineParallelOptions options,
                const std::vector<int64_t>& split, uint64_t seed, bool recompute) {
    const int pp = grid.shape().pp, V = options.virtual_stages;
    const auto partition = partition_blocks(config.num_layers, pp * V, split);
    std::vector<PipelineChunk> pieces;
    for (int v = 0; v < V; ++v) {
      const int stage = v * pp + grid.coordinate(Axis::pp);
      auto model = std::make_unique<models::Gpt2>(config, models::pipeline_placement(partition, stage));
      model->initialize(seed);
      chunks.push_back(std::make_unique<models::Gpt2PipelineChunk>(std::move(model), recompute));
      pieces.push_back({chunks.back().get(), chunks.back()->model().named_parameters()});
    }
    options.tied_parameter = "wte.weight";
    pipeline = std::make_unique<PipelineParallel>(grid, std::move(pieces), std::move(options));
  }

  void set_batch(const io::Batch& batch, int micro_batches) {
    const auto micro = models::split_micro_batches({{batch.inputs, batch.targets}}, micro_batches);
    for (auto& chunk : chunks) chunk->set_micro_batches(micro);
  }

  std::map<std::string, std::vector<float>> by_name(bool grads) const {
    std::map<std::string, std::vector<float>> out;
    for (const auto& chunk : chunks)
      for (const auto& p : chunk->model().named_parameters())
        out[p.name] = grads ? p.tensor.grad().to_float_vector() : p.tensor.to_float_vector();
    return out;
  }
};

struct Layout {
  int dp, pp;
  ScheduleKind schedule;
  int virtual_stages;
  int micro_batches;
  int64_t batch;  // per dp rank
  int zero_stage;
  bool recompute = false;
  std::vector<int64_t> split = {};
};

class PipelineParity : public ::testing::TestWithParam<Layout> {};

TEST_P(PipelineParity, MatchesOneProcessOnTheGlobalBatch) {
  const Layout layout = GetParam();
  MERIDIAN_REQUIRE_WORLD_SIZE(layout.dp * layout.pp);
  auto world = meridian::testing::runtime().world();
  ProcessGrid grid(world, {1, layout.dp, layout.pp});
  const models::Gpt2Config config = tiny_gpt2(8, 2, 128);
  const int D = layout.dp, M = layout.micro_batches;
  optim::LrSchedule schedule{1e-2f, 2, kSteps, optim::LrDecay::cosine, 0.1f};
  const optim::AdamWOptions adamw{0.9f, 0.95f, 1e-8f, 0.1f};
  const float clip = 0.5f;  // small enough that clipping is active on some steps

  models::Gpt2 reference(config);
  reference.initialize(11);
  const auto initial = by_name(reference, false);
  optim::AdamW reference_optimizer(optim::optimizer_params(reference.named_parameters()), adamw);
  io::DataLoader reference_data(synthetic_tokens(), {layout.batch * D, kSeqLen, 1, 0, 1, false, 0});

  PipelineParallelOptions options;
  options.schedule = layout.schedule;
  options.virtual_stages = layout.virtual_stages;
  options.micro_batches = M;
  options.activation_shape = {layout.batch / M, kSeqLen, config.channels};
  options.data_parallel = {4096, layout.zero_stage, true};
  PipelinedGpt2 model(grid, config, options, layout.split, 11, layout.recompute);
  optim::AdamW optimizer(model.pipeline->optimizer_params(), adamw);
  io::DataLoader data(synthetic_tokens(), {layout.batch, kSeqLen, D, grid.coordinate(Axis::dp), 1, false, 0});

  for (int64_t step = 0; step < kSteps; ++step) {
    reference_optimizer.zero_grad();
    const io::Batch reference_batch = reference_data.batch(step);
    Tensor reference_loss = reference.loss(reference_batch.inputs, reference_batch.targets);
    reference_loss.backward();
    const double reference_norm = testing::grad_norm_of(reference);

    model.set_batch(data.batch(step), M);
    const double loss = model.pipeline->forward_backward();
    const double norm = model.pipeline->grad_norm();
    const double want_loss = reference_loss.item<double>();
    EXPECT_NEAR(loss, want_loss, kTolerance * want_loss) << "step " << step;
    EXPECT_NEAR(norm, reference_norm, kTolerance * reference_norm) << "step " << step;

    if (step == 0 && layout.zero_stage == 0) {
      // Every gradient this rank holds — both copies of the tied embedding included — equals the
      // single-process gradient.
      const auto want = by_name(reference, true);
      for (const auto& [name, grad] : model.by_name(true)) expect_close(grad, want.at(name), 1e-5, name);
    }

    const float lr = schedule.at(step);
    reference_optimizer.step(lr, optim::clip_coefficient(reference_norm, clip));
    optimizer.step(lr, optim::clip_coefficient(norm, clip));
    model.pipeline->after_optimizer_step();
  }

  // Weights after training, per tensor (the criterion and the qkv-bias note of
  // data_parallel_test.cpp): ‖w − w_ref‖ ≤ 1e-3·‖w_ref − w_init‖. The first and the last stage's
  // copies of the tied embedding are both compared.
  const auto want = by_name(reference, false);
  for (const auto& [name, values] : model.by_name(false)) {
    const std::vector<float>& ref = want.at(name);
    const std::vector<float>& init = initial.at(name);
    const bool qkv_bias = name.ends_with("attn.c_attn.bias");
    double diff = 0.0, moved = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
      if (qkv_bias && static_cast<int64_t>(i) >= config.channels && static_cast<int64_t>(i) < 2 * config.channels)
        continue;
      diff += std::pow(static_cast<double>(values[i]) - ref[i], 2);
      moved += std::pow(static_cast<double>(ref[i]) - init[i], 2);
    }
    EXPECT_LE(std::sqrt(diff), 1e-3 * std::sqrt(moved)) << name;
  }
}

constexpr auto kGpipe = ScheduleKind::gpipe;
constexpr auto k1F1B = ScheduleKind::one_f_one_b;
constexpr auto kInterleaved = ScheduleKind::interleaved;
constexpr auto kZeroBubble = ScheduleKind::zero_bubble_h1;

INSTANTIATE_TEST_SUITE_P(
    Layouts, PipelineParity,
    ::testing::Values(
        // pp = 2, every schedule; an uneven explicit split; recompute under the split backward.
        Layout{1, 2, kGpipe, 1, 4, 4, 0}, Layout{1, 2, k1F1B, 1, 4, 4, 0}, Layout{1, 2, kInterleaved, 2, 4, 4, 0},
        Layout{1, 2, kZeroBubble, 1, 4, 4, 0}, Layout{1, 2, k1F1B, 1, 2, 4, 0, false, {3, 5}},
        Layout{1, 2, kZeroBubble, 1, 4, 4, 0, true},
        // pp = 4, every schedule (interleaved: 8 stages of one block).
        Layout{1, 4, kGpipe, 1, 4, 4, 0}, Layout{1, 4, k1F1B, 1, 4, 4, 0}, Layout{1, 4, kInterleaved, 2, 4, 4, 0},
        Layout{1, 4, kZeroBubble, 1, 4, 4, 0},
        // dp = 2 × pp = 2 with ZeRO, and with the deferred weight gradients of zb-h1.
        Layout{2, 2, k1F1B, 1, 2, 2, 1}, Layout{2, 2, kInterleaved, 2, 2, 2, 2}, Layout{2, 2, kZeroBubble, 1, 2, 2, 0},
        Layout{2, 2, kZeroBubble, 1, 2, 2, 1}, Layout{2, 2, kZeroBubble, 1, 4, 4, 2}, Layout{2, 2, kGpipe, 1, 2, 2, 2}),
    [](const ::testing::TestParamInfo<Layout>& param_info) {
      const Layout& l = param_info.param;
      std::string name(schedule_name(l.schedule));
      std::erase(name, '-');
      name = "dp" + std::to_string(l.dp) + "_pp" + std::to_string(l.pp) + "_" + name + "_v" +
             std::to_string(l.virtual_stages) + "_m" + std::to_string(l.micro_batches) + "_zero" +
             std::to_string(l.zero_stage);
      if (l.recompute) name += "_recompute";
      for (int64_t blocks : l.split) name += "_" + std::to_string(blocks);
      return name;
    });

// The activation counter on real runs: 1F1B keeps at most pp − rank micro-batches alive (pp on the
// first stage), GPipe all M, ZB-H1 at most pp; each equals the schedule model's count, and GPipe's
// peak tensor memory on the first stage is above 1F1B's.
TEST(PipelineActivations, OneFOneBKeepsAtMostPpMicroBatchesAliveGPipeKeepsAll) {
  MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(2);
  auto world = meridian::testing::runtime().world();
  const int pp = world->size(), M = 8;
  ProcessGrid grid(world, {1, 1, pp});
  const models::Gpt2Config config = tiny_gpt2(pp, 2, 128);
  io::DataLoader data(synthetic_tokens(), {M, kSeqLen, 1, 0, 1, false, 0});
  std::map<ScheduleKind, std::pair<int, size_t>> peaks;  // live micro-batches, peak bytes
  for (ScheduleKind kind : {kGpipe, k1F1B, kZeroBubble}) {
    PipelineParallelOptions options;
    options.schedule = kind;
    options.micro_batches = M;
    options.activation_shape = {1, kSeqLen, config.channels};
    PipelinedGpt2 model(grid, config, options, {}, 5, false);
    model.set_batch(data.batch(0), M);
    model.pipeline->forward_backward();  // warm-up: gradient buffers and allocator caches exist now
    allocator_for(Device::cpu()).reset_peak();
    const size_t before = allocator_for(Device::cpu()).stats().allocated_bytes;
    model.pipeline->forward_backward();
    const size_t peak = allocator_for(Device::cpu()).stats().peak_allocated_bytes - before;
    const int live = model.pipeline->last_step().peak_live_micro_batches;
    const int rank = grid.coordinate(Axis::pp);
    const SimulatedPipeline simulated = simulate_schedule(kind, {pp, 1, M});
    EXPECT_EQ(live, simulated.peak_live_micro_batches[static_cast<size_t>(rank)]) << schedule_name(kind);
    peaks[kind] = {live, peak};
  }
  const int rank = grid.coordinate(Axis::pp);
  EXPECT_EQ(peaks[kGpipe].first, M);
  EXPECT_EQ(peaks[k1F1B].first, pp - rank);
  EXPECT_LE(peaks[kZeroBubble].first, pp);
  if (rank == 0) {
    EXPECT_GT(peaks[kGpipe].second, peaks[k1F1B].second);
  }
}

TEST(PipelineErrors, NameTheProblem) {
  auto world = meridian::testing::runtime().world();
  ProcessGrid grid(world, {1, world->size(), 1});
  const models::Gpt2Config config = tiny_gpt2(2, 2, 128);
  auto model = std::make_unique<models::Gpt2>(config);
  models::Gpt2PipelineChunk chunk(std::move(model), false);
  PipelineParallelOptions options;
  options.activation_shape = {1, kSeqLen, config.channels};
  try {
    PipelineParallel(grid, {{&chunk, chunk.model().named_parameters()}}, options);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs pp >= 2"), std::string::npos) << e.what();
  }
  io::DataLoader data(synthetic_tokens(), {6, kSeqLen, 1, 0, 1, false, 0});
  const io::Batch batch = data.batch(0);
  try {
    models::split_micro_batches({{batch.inputs, batch.targets}}, 4);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("6 sequences does not split into 4"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace meridian::parallel

// Pipeline schedules, checked on the pipeline model of schedule_simulation.h (no communication):
// every list holds each pass once and runs to the end, the bubble equals the published formulas
// with equal-cost passes, 1F1B bounds the live micro-batches; plus the stage partition and the
// errors for shapes a schedule cannot run.
#include "parallel/pipeline/schedule.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "parallel/pipeline/schedule_simulation.h"
#include "parallel/pipeline/stage_partition.h"

namespace meridian::parallel {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(PipelineSchedule, OneFOneBOrderIsMegatrons) {
  const ScheduleShape shape{4, 1, 6};
  std::vector<std::string> rank0, rank3;
  for (const auto& a : build_schedule(ScheduleKind::one_f_one_b, shape, 0)) rank0.push_back(to_string(a));
  for (const auto& a : build_schedule(ScheduleKind::one_f_one_b, shape, 3)) rank3.push_back(to_string(a));
  EXPECT_EQ(rank0, (std::vector<std::string>{"F0", "F1", "F2", "F3", "B0", "F4", "B1", "F5", "B2", "B3", "B4", "B5"}));
  EXPECT_EQ(rank3, (std::vector<std::string>{"F0", "B0", "F1", "B1", "F2", "B2", "F3", "B3", "F4", "B4", "F5", "B5"}));
}

TEST(PipelineSchedule, ZeroBubbleDelaysWeightPassesByTheRank) {
  std::vector<std::string> last;
  for (const auto& a : build_schedule(ScheduleKind::zero_bubble_h1, {2, 1, 3}, 1)) last.push_back(to_string(a));
  EXPECT_EQ(last, (std::vector<std::string>{"F0", "B0", "F1", "B1", "W0", "F2", "B2", "W1", "W2"}));
}

struct Case {
  ScheduleKind kind;
  int pp, virtual_stages, micro_batches;
};

class ScheduleShapes : public ::testing::TestWithParam<Case> {};

TEST_P(ScheduleShapes, RunToTheEndWithTheTheoreticalBubble) {
  const Case c = GetParam();
  const ScheduleShape shape{c.pp, c.virtual_stages, c.micro_batches};
  // Equal-cost stages: a chunk holds 1/V of a rank's work; backward costs twice the forward, split
  // into equal B and W halves.
  const double v = c.virtual_stages;
  const PassCosts costs{1.0 / v, 2.0 / v, 1.0 / v, 1.0 / v};
  const SimulatedPipeline sim = simulate_schedule(c.kind, shape, costs);
  const double p = c.pp, m = c.micro_batches;
  double theory = (p - 1) / (m + p - 1);  // GPipe, 1F1B
  if (c.kind == ScheduleKind::interleaved) theory = (p - 1) / (v * m + p - 1);
  if (c.kind == ScheduleKind::zero_bubble_h1) theory = (p - 1) / (3 * m + p - 1);  // F = B = W, m ≥ p
  for (int r = 0; r < c.pp; ++r) EXPECT_NEAR(sim.bubble_fraction[static_cast<size_t>(r)], theory, 1e-9) << "rank " << r;

  for (int r = 0; r < c.pp; ++r) {
    const int peak = sim.peak_live_micro_batches[static_cast<size_t>(r)];
    switch (c.kind) {
      case ScheduleKind::gpipe: EXPECT_EQ(peak, c.micro_batches); break;
      case ScheduleKind::one_f_one_b: EXPECT_EQ(peak, std::min(c.pp - r, c.micro_batches)); break;
      case ScheduleKind::zero_bubble_h1: EXPECT_LE(peak, c.pp); break;  // ZB-H1: 1F1B's peak on every stage
      case ScheduleKind::interleaved: EXPECT_LE(peak, c.micro_batches * c.virtual_stages); break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, ScheduleShapes,
    ::testing::Values(Case{ScheduleKind::gpipe, 4, 1, 8}, Case{ScheduleKind::gpipe, 2, 1, 1},
                      Case{ScheduleKind::one_f_one_b, 4, 1, 8}, Case{ScheduleKind::one_f_one_b, 4, 1, 16},
                      Case{ScheduleKind::one_f_one_b, 4, 1, 2}, Case{ScheduleKind::one_f_one_b, 8, 1, 8},
                      Case{ScheduleKind::interleaved, 4, 2, 8}, Case{ScheduleKind::interleaved, 4, 2, 4},
                      Case{ScheduleKind::interleaved, 2, 3, 6}, Case{ScheduleKind::interleaved, 4, 4, 16},
                      Case{ScheduleKind::zero_bubble_h1, 4, 1, 8}, Case{ScheduleKind::zero_bubble_h1, 4, 1, 4},
                      Case{ScheduleKind::zero_bubble_h1, 2, 1, 5}, Case{ScheduleKind::zero_bubble_h1, 8, 1, 16}),
    [](const ::testing::TestParamInfo<Case>& param_info) {
      const Case& c = param_info.param;
      std::string name(schedule_name(c.kind));
      std::erase(name, '-');
      return name + "_pp" + std::to_string(c.pp) + "_v" + std::to_string(c.virtual_stages) + "_m" +
             std::to_string(c.micro_batches);
    });

TEST(PipelineSchedule, FewerMicroBatchesThanStagesStillRun) {
  for (ScheduleKind kind : {ScheduleKind::gpipe, ScheduleKind::one_f_one_b, ScheduleKind::zero_bubble_h1})
    for (int m = 1; m <= 3; ++m) EXPECT_NO_THROW(simulate_schedule(kind, {4, 1, m})) << schedule_name(kind) << " m=" << m;
}

TEST(PipelineSchedule, ZeroBubbleBeatsInterleavedBeatsOneFOneB) {
  const SimulatedPipeline one_f_one_b = simulate_schedule(ScheduleKind::one_f_one_b, {4, 1, 8});
  const SimulatedPipeline interleaved = simulate_schedule(ScheduleKind::interleaved, {4, 2, 8}, {0.5, 1.0, 0.5, 0.5});
  const SimulatedPipeline zero_bubble = simulate_schedule(ScheduleKind::zero_bubble_h1, {4, 1, 8});
  EXPECT_LT(interleaved.bubble_fraction[0], one_f_one_b.bubble_fraction[0]);
  EXPECT_LT(zero_bubble.bubble_fraction[0], interleaved.bubble_fraction[0]);
}

TEST(PipelineSchedule, RejectsShapesTheScheduleCannotRun) {
  EXPECT_NE(message_of([] { build_schedule(ScheduleKind::interleaved, {4, 2, 6}, 0); })
                .find("micro-batches (6) divisible by pp (4)"),
            std::string::npos);
  EXPECT_NE(message_of([] { build_schedule(ScheduleKind::interleaved, {4, 1, 8}, 0); }).find("at least 2 virtual stages"),
            std::string::npos);
  EXPECT_NE(message_of([] { build_schedule(ScheduleKind::one_f_one_b, {4, 2, 8}, 0); }).find("need the interleaved schedule"),
            std::string::npos);
  EXPECT_NE(message_of([] { build_schedule(ScheduleKind::gpipe, {2, 1, 0}, 0); }).find("micro-batches must be at least 1"),
            std::string::npos);
  EXPECT_NE(message_of([] { parse_schedule_kind("pipedream"); }).find("gpipe, 1f1b, interleaved or zb-h1"), std::string::npos);
  EXPECT_EQ(parse_schedule_kind("zb-h1"), ScheduleKind::zero_bubble_h1);
}

TEST(StagePartition, BalancesAndFollowsAnExplicitSplit) {
  const auto balanced = partition_blocks(10, 4);
  ASSERT_EQ(balanced.size(), 4u);
  EXPECT_EQ(balanced[0].num_blocks, 3);
  EXPECT_EQ(balanced[1].num_blocks, 3);
  EXPECT_EQ(balanced[2].num_blocks, 2);
  EXPECT_EQ(balanced[3].first_block, 8);
  const auto split = partition_blocks(12, 4, parse_stage_split("3,3,2,4"));
  EXPECT_EQ(split[2].first_block, 6);
  EXPECT_EQ(split[3].num_blocks, 4);
}

TEST(StagePartition, NamesWhatIsWrong) {
  EXPECT_NE(message_of([] { partition_blocks(3, 4); }).find("3 layers cannot fill 4 stages"), std::string::npos);
  EXPECT_NE(message_of([] { partition_blocks(12, 4, {3, 3, 3, 4}); }).find("sums to 13 blocks but the model has 12"),
            std::string::npos);
  EXPECT_NE(message_of([] { partition_blocks(12, 4, {6, 6}); }).find("2 entries but there are 4 stages"), std::string::npos);
  EXPECT_NE(message_of([] { partition_blocks(4, 2, {4, 0}); }).find("stage 1 0 blocks"), std::string::npos);
  EXPECT_NE(message_of([] { parse_stage_split("3,x,2"); }).find("'x' is not a whole number"), std::string::npos);
  EXPECT_NE(message_of([] { parse_stage_split("3,,2"); }).find("is not a whole number"), std::string::npos);
}

}  // namespace
}  // namespace meridian::parallel

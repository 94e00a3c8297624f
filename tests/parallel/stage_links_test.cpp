// The pipeline's stage links (no communication): every boundary crossing of every micro-batch is one
// message on the link between the two ranks, links join neighbours only, and on every link the
// receiver consumes the messages in the order they are sent — the property that lets the links
// match in issue order (NCCL's rule, and MPI's with one tag). A schedule that breaks it is refused.
#include "parallel/pipeline/stage_links.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/error.h"

namespace meridian::parallel {
namespace {

std::vector<std::pair<ScheduleKind, ScheduleShape>> every_shape() {
  std::vector<std::pair<ScheduleKind, ScheduleShape>> out;
  for (ScheduleKind kind : {ScheduleKind::gpipe, ScheduleKind::one_f_one_b, ScheduleKind::interleaved,
                            ScheduleKind::zero_bubble_h1})
    for (int p = 2; p <= 8; ++p)
      for (int v = 1; v <= 4; ++v)
        for (int m = 1; m <= 16; ++m) {
          const ScheduleShape shape{p, v, m};
          try {
            check_schedule_shape(kind, shape);
          } catch (const Error&) {
            continue;
          }
          out.emplace_back(kind, shape);
        }
  return out;
}

TEST(StageLinks, EveryCrossingIsOneMessageBetweenNeighboursInOrder) {
  int shapes = 0;
  for (const auto& [kind, shape] : every_shape()) {
    ++shapes;
    const int p = shape.pipeline_size;
    const std::vector<StageLink> links = pipeline_links(kind, shape);  // throws if a link is out of order
    std::set<std::tuple<int, int, int>> messages;                      // (pass, global stage, micro-batch)
    for (const StageLink& link : links) {
      EXPECT_TRUE(link.receiver == (link.sender + 1) % p || link.receiver == (link.sender + p - 1) % p)
          << link.sender << " > " << link.receiver;
      for (const StageMessage& m : link.messages)
        EXPECT_TRUE(messages.insert({static_cast<int>(m.pass), m.chunk * p + link.receiver, m.micro_batch}).second)
            << "a message travels twice";
    }
    // Activations into stages 1 .. S-1 and gradients into stages 0 .. S-2, for every micro-batch.
    EXPECT_EQ(messages.size(), static_cast<size_t>(2 * (shape.stages() - 1) * shape.micro_batches))
        << schedule_name(kind) << " pp " << p << " V " << shape.virtual_stages << " M " << shape.micro_batches;
  }
  EXPECT_GT(shapes, 300);
}

TEST(StageLinks, InterleavedOnTwoRanksSendsBothKindsOnOneLink) {
  // pp = 2, V = 2: rank 0 sends the activations of stages 0 → 1 and 2 → 3 and the gradients of
  // stage 2 → 1, all to rank 1.
  const std::vector<StageLink> links = pipeline_links(ScheduleKind::interleaved, {2, 2, 4});
  ASSERT_EQ(links.size(), 2u);
  EXPECT_EQ(links[0].sender, 0);
  EXPECT_EQ(links[0].receiver, 1);
  const auto& m = links[0].messages;
  EXPECT_EQ(std::count_if(m.begin(), m.end(), [](const StageMessage& x) { return x.pass == PassKind::forward; }), 8);
  EXPECT_EQ(std::count_if(m.begin(), m.end(), [](const StageMessage& x) { return x.pass == PassKind::backward; }), 4);
  // Without interleaving nothing goes around the ring: one link each way.
  const std::vector<StageLink> plain = pipeline_links(ScheduleKind::one_f_one_b, {4, 1, 8});
  EXPECT_EQ(plain.size(), 6u);
}

TEST(StageLinks, RefusesAScheduleThatConsumesOutOfOrder) {
  const ScheduleShape shape{2, 1, 4};
  std::vector<std::vector<PipelineAction>> schedules = {build_schedule(ScheduleKind::gpipe, shape, 0),
                                                        build_schedule(ScheduleKind::gpipe, shape, 1)};
  // Rank 1 runs its forwards F1 before F0: rank 0 sends F0's activation first.
  std::swap(schedules[1][0], schedules[1][1]);
  try {
    pipeline_links(schedules, shape);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pp rank 1 take F1's input from pp rank 0 out of the order"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace meridian::parallel

#include "parallel/pipeline/stage_links.h"

#include <map>

#include "core/error.h"

namespace meridian::parallel {

namespace {

bool is_backward_input(PassKind pass) { return pass == PassKind::backward || pass == PassKind::backward_input; }

}  // namespace

bool consumed_message(const PipelineAction& action, const ScheduleShape& shape, int rank, StageMessage& message,
                      int& sender) {
  const int p = shape.pipeline_size;
  const int stage = action.chunk * p + rank;
  if (action.pass == PassKind::forward && stage > 0) {
    message = {PassKind::forward, action.chunk, action.micro_batch};
    sender = (rank + p - 1) % p;
    return true;
  }
  if (is_backward_input(action.pass) && stage < shape.stages() - 1) {
    message = {PassKind::backward, action.chunk, action.micro_batch};
    sender = (rank + 1) % p;
    return true;
  }
  return false;
}

bool produced_message(const PipelineAction& action, const ScheduleShape& shape, int rank, StageMessage& message,
                      int& receiver) {
  const int p = shape.pipeline_size;
  const int stage = action.chunk * p + rank;
  int target = -1;  // the global stage that consumes this action's output
  PassKind consumer = PassKind::forward;
  if (action.pass == PassKind::forward && stage < shape.stages() - 1) {
    target = stage + 1;
  } else if (is_backward_input(action.pass) && stage > 0) {
    target = stage - 1;
    consumer = PassKind::backward;
  }
  if (target < 0) return false;
  message = {consumer, target / p, action.micro_batch};
  receiver = target % p;
  return true;
}

std::vector<StageLink> pipeline_links(ScheduleKind kind, const ScheduleShape& shape) {
  std::vector<std::vector<PipelineAction>> schedules;
  for (int rank = 0; rank < shape.pipeline_size; ++rank) schedules.push_back(build_schedule(kind, shape, rank));
  return pipeline_links(schedules, shape);
}

std::vector<StageLink> pipeline_links(const std::vector<std::vector<PipelineAction>>& schedules,
                                      const ScheduleShape& shape) {
  const int p = shape.pipeline_size;
  MERIDIAN_CHECK(static_cast<int>(schedules.size()) == p, "pipeline_links: ", schedules.size(),
                 " action lists for pp ", p);
  std::map<std::pair<int, int>, std::vector<StageMessage>> by_pair;
  for (int rank = 0; rank < p; ++rank) {
    for (const PipelineAction& action : schedules[static_cast<size_t>(rank)]) {
      StageMessage message{};
      int receiver = 0;
      if (produced_message(action, shape, rank, message, receiver)) by_pair[{rank, receiver}].push_back(message);
    }
  }
  std::vector<StageLink> links;
  for (auto& [pair, messages] : by_pair) links.push_back({pair.first, pair.second, std::move(messages)});
  for (const StageLink& link : links) {
    size_t next = 0;  // the receiver's consumption order against the sender's
    for (const PipelineAction& action : schedules[static_cast<size_t>(link.receiver)]) {
      StageMessage message{};
      int sender = 0;
      if (!consumed_message(action, shape, link.receiver, message, sender) || sender != link.sender) continue;
      if (next >= link.messages.size() || !(link.messages[next] == message))
        MERIDIAN_FAIL("pipeline: the schedule has pp rank ", link.receiver, " take ",
                      to_string(action), "'s input from pp rank ", link.sender,
                      " out of the order that rank sends it (stage links match messages in order)");
      ++next;
    }
    MERIDIAN_CHECK(next == link.messages.size(), "pipeline: pp rank ", link.receiver, " consumes ", next, " of the ",
                   link.messages.size(), " messages pp rank ", link.sender, " sends it");
  }
  return links;
}

}  // namespace meridian::parallel

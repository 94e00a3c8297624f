#pragma once
// Who sends what to whom in a pipeline step, derived from every rank's schedule.
//
// A link is a directed pair of pp ranks (sender → receiver) with at least one message. Activations
// go from global stage s to s+1 and gradients from s+1 to s, so a rank's links go to r ± 1 (mod pp);
// with pp = 2 and V ≥ 2 one link carries both kinds (rank 0 → 1: the activations of stages 0 → 1 and
// 2 → 3, and the gradients of stage 2 → 1). Each link gets a communicator of
// its own, and every message on it travels in the order the sender sends it — its action order —
// which the receiver computes from the sender's schedule and follows when posting receives. That
// is what NCCL needs (it matches point-to-point calls in issue order, ignores tags, and its sends
// block the stream until the receive runs), and on MPI it is exercised with one tag per link, so
// MPI's in-order matching would hand a message to the wrong receive if the orders ever differed.
#include <utility>
#include <vector>

#include "parallel/pipeline/schedule.h"

namespace meridian::parallel {

// One message as the receiver names it: the action that consumes it. A forward consumes an
// activation, a backward (or the B pass of a split backward) the gradient of the stage's output;
// `pass` is forward or backward (B is named backward).
struct StageMessage {
  PassKind pass;
  int chunk;  // the receiver's chunk
  int micro_batch;
  bool operator==(const StageMessage&) const = default;
};

struct StageLink {
  int sender;    // pp rank
  int receiver;  // pp rank
  std::vector<StageMessage> messages;  // in the sender's order
};

// Every link of the step with its messages, sorted by (sender, receiver): the same list on every
// rank. Checks the shape, and that on every link the receiver consumes the messages in the order
// they are sent (true of every schedule in schedule.h; a new schedule that breaks it fails here,
// naming the link and the first message out of order).
std::vector<StageLink> pipeline_links(ScheduleKind kind, const ScheduleShape& shape);
// The same from every rank's action list (`schedules[r]` for pp rank r).
std::vector<StageLink> pipeline_links(const std::vector<std::vector<PipelineAction>>& schedules,
                                      const ScheduleShape& shape);

// The message `action` (on pp rank `rank`) consumes, if it receives one: a forward of any global
// stage but the first, a backward or B of any stage but the last. `sender` is set to its peer.
bool consumed_message(const PipelineAction& action, const ScheduleShape& shape, int rank, StageMessage& message,
                      int& sender);
// The message `action` (on pp rank `rank`) produces, if it sends one: a forward of any global stage
// but the last (its activation), a backward or B of any stage but the first (its input gradient).
// `receiver` is set to the consuming rank.
bool produced_message(const PipelineAction& action, const ScheduleShape& shape, int rank, StageMessage& message,
                      int& receiver);

}  // namespace meridian::parallel

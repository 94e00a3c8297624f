#pragma once
// Point-to-point transfers between neighbouring pipeline stages: activations go forward (global
// stage s → s+1), their gradients backward (s+1 → s). Global stage s is chunk s / pp of pp rank
// s mod pp, so every transfer is between ranks r and r±1 (mod pp).
//
// Protocol (the same on MPI and NCCL; see docs/pipeline_parallel.md for why it cannot deadlock):
//  - every directed pair of ranks that exchanges data has a communicator of its own (a link,
//    stage_links.h), split off the pp group and handed to the run's TensorGroupFactory: the MPI
//    link itself for host tensors, an NCCL communicator over it for GPU tensors;
//  - on a link, messages are matched in the order they are issued, all with tag 0: the sender
//    sends in its action order, and the receiver consumes them in its action order, which every
//    schedule makes the same order (pipeline_links checks it; each receive checks it is the link's
//    next message). NCCL matches in issue order anyway; on MPI the single tag makes the matching
//    in-order too, so the CPU tests run the protocol NCCL relies on;
//  - every transfer is non-blocking for the host: sends are issued the moment their tensor exists
//    and waited for at the end of the step; receives are posted ahead of the action that needs
//    them (the engine posts the next few actions' receives before it computes the current one);
//  - the receive buffer is a fresh tensor of the activation shape on the run's device.
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "parallel/comm/communicator.h"
#include "parallel/comm/tensor_groups.h"
#include "parallel/pipeline/schedule.h"
#include "parallel/pipeline/stage_links.h"
#include "parallel/pipeline/timeline.h"

namespace meridian::parallel {

struct StageTransferOptions {
  ScheduleKind schedule = ScheduleKind::one_f_one_b;
  ScheduleShape shape;
  Shape activation_shape;
  DType activation_dtype = DType::f32;
  Device device = Device::cpu();      // where activations and receive buffers live
  comm::TensorGroupFactory tensor_groups;  // empty: the MPI links carry the tensors
};

class StageTransfers {
 public:
  // Collective over the pp group (it splits off the links, and the factory may bootstrap them).
  StageTransfers(comm::Communicator& pp_group, StageTransferOptions options, Timeline& timeline);

  // Posts the receive of `action`'s input, once; nothing for an action without one. Receives must
  // be posted in the rank's action order (each link's messages then arrive in the order sent).
  void post_receive(const PipelineAction& action);
  // Waits for `action`'s input (posting the receive first if needed) and hands it over. On NCCL
  // the wait orders the compute stream after the transfer; the host does not block.
  Tensor take_input(const PipelineAction& action);
  // Sends what `action` produced to the neighbour that needs it: a forward's activation to the
  // next stage, a backward's input gradient to the previous one. Nothing on the last stage's
  // forward (the loss) or the first stage's backward.
  void send_output(const PipelineAction& action, const Tensor& tensor);
  // Waits for every send issued so far; afterwards their buffers may go.
  void wait_for_sends();
  // Lets go of the sends that have completed (their handles keep the sent tensors alive: holding
  // them to the end of the step would keep every micro-batch's output, defeating 1F1B's memory).
  void release_completed_sends();
  // Receives posted but not taken (0 at the end of a well-formed step).
  size_t pending_receives() const { return receives_.size(); }
  // After the step's last action: checks that every message was received and taken, and starts
  // the links' message lists over for the next step.
  void end_step();
  // The links this rank sends on and receives from (for the log and the tests).
  size_t outgoing_links() const { return outgoing_.size(); }
  size_t incoming_links() const { return incoming_.size(); }

 private:
  struct Incoming {
    std::shared_ptr<comm::Communicator> group;  // rank 0 the sender, rank 1 this rank
    std::vector<StageMessage> messages;         // in the sender's order
    size_t posted = 0;                          // messages[0 .. posted) have receives
  };
  struct PendingReceive {
    Tensor buffer;
    comm::WorkHandle handle;
  };
  using Key = std::tuple<int, int, int>;  // (pass, chunk, micro-batch) of the consuming action

  StageTransferOptions options_;
  Timeline& timeline_;
  int rank_;
  std::map<int, std::shared_ptr<comm::Communicator>> outgoing_;  // by receiver; rank 1 the receiver
  std::map<int, Incoming> incoming_;                             // by sender
  std::map<Key, PendingReceive> receives_;
  std::vector<comm::WorkHandle> sends_;
};

}  // namespace meridian::parallel

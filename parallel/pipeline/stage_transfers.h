#pragma once
// Point-to-point transfers between neighbouring pipeline stages over the pp group: activations go
// forward (global stage s → s+1), their gradients backward (s+1 → s). Global stage s is chunk
// s / pp of pp rank s mod pp, so every transfer is between ranks r and r±1 (mod pp).
//
// Protocol (MPI; see docs/pipeline_parallel.md for why it cannot deadlock):
//  - every transfer is non-blocking: sends are posted the moment their tensor exists and waited
//    only at the end of the step; receives are posted ahead of the action that needs them (the
//    engine posts the next few actions' receives before it computes the current one), so data
//    moves while the rank computes;
//  - a message is identified by its tag: (micro-batch · V + the receiving chunk) · 2 + direction,
//    so messages between the same two ranks never match the wrong receive, whatever their order;
//  - the receive buffer is a fresh tensor of the activation shape, owned by the receiver.
// On NCCL (which matches in issue order and ignores tags) both halves of an exchange would have to
// be posted together with send_recv(); pipeline training runs on the MPI backend today.
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "core/tensor.h"
#include "parallel/comm/communicator.h"
#include "parallel/pipeline/schedule.h"
#include "parallel/pipeline/timeline.h"

namespace meridian::parallel {

class StageTransfers {
 public:
  StageTransfers(comm::Communicator& pp_group, const ScheduleShape& shape, Shape activation_shape,
                 DType activation_dtype, Timeline& timeline);

  // Whether `action` takes its input from a neighbour: a forward of any stage but the first, a
  // backward (or B) of any stage but the last.
  bool receives_input(const PipelineAction& action) const;
  // Posts the receive of `action`'s input, once; nothing for an action without one.
  void post_receive(const PipelineAction& action);
  // Waits for `action`'s input (posting the receive first if needed) and hands it over.
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

 private:
  struct Route {
    int peer;  // rank in the pp group
    int tag;
  };
  int stage_of(const PipelineAction& action) const;
  Route input_route(const PipelineAction& action) const;
  Route output_route(const PipelineAction& action) const;

  comm::Communicator& group_;
  ScheduleShape shape_;
  Shape activation_shape_;
  DType activation_dtype_;
  Timeline& timeline_;
  int rank_;
  struct PendingReceive {
    Tensor buffer;
    comm::WorkHandle handle;
  };
  std::map<std::tuple<int, int, int>, PendingReceive> receives_;  // (pass, chunk, micro-batch)
  std::vector<comm::WorkHandle> sends_;
};

}  // namespace meridian::parallel

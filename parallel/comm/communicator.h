#pragma once
// Communicator: one group of ranks and the collectives among them. There is no global
// communicator: every collective is called on the group it concerns (the world, or a tp/dp/pp
// group from parallel/process_grid.h), and groups are built from others with split().
//
// Every operation is asynchronous: it returns a WorkHandle at once and the caller waits on it when
// it needs the result (see work.h). Rules every backend follows:
//  - Ordering: every rank of a group must issue the group's collectives (and split) in the same
//    order; each gets the next sequence number of that group, which the watchdog reports.
//    Operations on different groups are independent of each other.
//  - Buffers: tensors must be contiguous and stay untouched (inputs unread-from-elsewhere is fine,
//    outputs must not be read) until wait() returns. The handle keeps their storage alive.
//  - Sizes: empty tensors are fine; a group of one rank completes at once without communicating.
//  - Dtypes: all_reduce and reduce_scatter take f32, bf16, f16 and i32 (avg: floating only);
//    all_gather, broadcast, send and recv move any dtype (they only copy bytes).
//  - Errors: bad arguments throw meridian::Error at the call; failures during the operation
//    (and timeouts) are thrown by wait().
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "parallel/comm/reduce_op.h"
#include "parallel/comm/work.h"

namespace meridian::comm {

// One half of a point-to-point exchange, for send_recv().
struct PeerTransfer {
  enum class Direction : uint8_t { send, recv };
  Direction direction;
  Tensor tensor;  // send: the data; recv: filled in
  int peer;       // rank in this group
  int tag = 0;    // MPI matches by (peer, tag); NCCL ignores tags and matches in issue order

  static PeerTransfer send(Tensor tensor, int peer, int tag = 0) {
    return {Direction::send, std::move(tensor), peer, tag};
  }
  static PeerTransfer recv(Tensor tensor, int peer, int tag = 0) {
    return {Direction::recv, std::move(tensor), peer, tag};
  }
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;  // in this group, 0 .. size()-1
  virtual int size() const = 0;
  virtual const std::string& name() const = 0;   // "world", "tp", "dp", "pp", ...
  virtual std::string_view backend() const = 0;  // "mpi" or "nccl"

  // In place: every rank ends with the reduction of all ranks' tensors.
  virtual WorkHandle all_reduce(Tensor& tensor, ReduceOp op) = 0;
  // input has size() × output.numel() elements; rank r receives the reduction of every rank's
  // r-th chunk. In place when output is input's chunk rank() (input's other chunks are clobbered).
  virtual WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) = 0;
  // output has size() × input.numel() elements; chunk r is rank r's input. In place when input is
  // output's chunk rank().
  virtual WorkHandle all_gather(const Tensor& input, Tensor& output) = 0;
  // In place: every rank ends with root's tensor.
  virtual WorkHandle broadcast(Tensor& tensor, int root) = 0;
  // Point to point. A send and the matching recv must agree on shape and dtype. On MPI, a send and
  // a recv issued separately never deadlock each other; on NCCL, post both halves of an exchange
  // together with send_recv().
  virtual WorkHandle send(const Tensor& tensor, int dst, int tag) = 0;
  virtual WorkHandle recv(Tensor& tensor, int src, int tag) = 0;
  // Several sends and recvs started together (a ring step, a pipeline exchange); one handle.
  virtual WorkHandle send_recv(const std::vector<PeerTransfer>& transfers) = 0;
  virtual WorkHandle barrier() = 0;

  // Collective over this group, blocking. Ranks passing the same color form a new group named
  // `name`, ordered by key (ties by rank here). A negative color leaves the rank out: it gets
  // nullptr. The new group shares this one's watchdog and backend.
  virtual std::shared_ptr<Communicator> split(int color, int key, const std::string& name) = 0;
};

}  // namespace meridian::comm

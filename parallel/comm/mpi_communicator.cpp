#include "parallel/comm/mpi_communicator.h"

#include <cstdio>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "parallel/comm/collective_checks.h"
#include "parallel/comm/mpi_check.h"
#include "parallel/comm/mpi_datatypes.h"
#include "parallel/comm/mpi_worker.h"
#include "parallel/comm/world_rank.h"

namespace meridian::comm {
namespace {

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (freed on destruction).
  MpiCommunicator(MPI_Comm comm, std::string name, std::shared_ptr<Watchdog> watchdog)
      : comm_(comm), name_(std::move(name)), watchdog_(std::move(watchdog)) {
    MERIDIAN_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MERIDIAN_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MERIDIAN_MPI_CHECK(MPI_Comm_set_name(comm_, name_.c_str()));
    int* tag_upper_bound = nullptr;
    int found = 0;
    MERIDIAN_MPI_CHECK(MPI_Comm_get_attr(comm_, MPI_TAG_UB, &tag_upper_bound, &found));
    max_tag_ = found && tag_upper_bound ? *tag_upper_bound : 32767;  // 32767: the MPI minimum
    if (size_ > 1) worker_ = std::make_unique<MpiWorker>(name_);
  }

  ~MpiCommunicator() override {
    worker_.reset();  // finishes what was issued first
    // A communicator that outlives MPI_Finalize has nothing left to free. Destructors must not
    // throw, so a failure is reported instead.
    int finalized = 0;
    if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
    if (const int status = MPI_Comm_free(&comm_); status != MPI_SUCCESS)
      std::fprintf(stderr, "rank %d: warning: MPI_Comm_free of group %s failed (MPI error %d)\n",
                   world_rank_for_messages(), name_.c_str(), status);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  std::string_view backend() const override { return "mpi"; }

  WorkHandle all_reduce(Tensor& tensor, ReduceOp op) override {
    const OpContext context = this->context("all_reduce");
    check_tensor(context, "tensor", tensor, Device::cpu());
    check_reducible(context, tensor.dtype(), op);
    const int count = mpi_count(context, tensor.numel());
    return issue(context, tensor.nbytes(), [=, this, tensor = tensor] {
      MERIDIAN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, tensor.raw_data(), count,
                                       mpi_element_type(tensor.dtype()),
                                       mpi_reduce_op(tensor.dtype(), op), comm_));
      if (op == ReduceOp::avg) divide_in_place(tensor.raw_data(), tensor.dtype(), count, size_);
    });
  }

  WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) override {
    const OpContext context = this->context("reduce_scatter");
    check_tensor(context, "input", input, Device::cpu());
    check_tensor(context, "output", output, Device::cpu());
    check_same_dtype(context, input, output);
    check_reducible(context, input.dtype(), op);
    check_chunked(context, input, "input", output, "output");
    const Placement placement = chunk_placement(context, input, output, rank_);
    const int count = mpi_count(context, output.numel());
    if (size_ == 1 && placement == Placement::separate && count > 0)
      std::memcpy(output.raw_data(), input.raw_data(), output.nbytes());
    return issue(context, input.nbytes(), [=, this, input = input, output = output] {
      const MPI_Datatype type = mpi_element_type(input.dtype());
      const MPI_Op reduce = mpi_reduce_op(input.dtype(), op);
      if (placement == Placement::in_place) {
        // MPI's in-place form leaves the result at the start of the buffer; move it to chunk r.
        MERIDIAN_MPI_CHECK(
            MPI_Reduce_scatter_block(MPI_IN_PLACE, input.raw_data(), count, type, reduce, comm_));
        if (rank_ != 0) std::memmove(output.raw_data(), input.raw_data(), output.nbytes());
      } else {
        MERIDIAN_MPI_CHECK(MPI_Reduce_scatter_block(input.raw_data(), output.raw_data(), count,
                                                    type, reduce, comm_));
      }
      if (op == ReduceOp::avg) divide_in_place(output.raw_data(), output.dtype(), count, size_);
    });
  }

  WorkHandle all_gather(const Tensor& input, Tensor& output) override {
    const OpContext context = this->context("all_gather");
    check_tensor(context, "input", input, Device::cpu());
    check_tensor(context, "output", output, Device::cpu());
    check_same_dtype(context, input, output);
    check_chunked(context, output, "output", input, "input");
    const Placement placement = chunk_placement(context, output, input, rank_);
    const int count = mpi_count(context, input.numel());
    if (size_ == 1 && placement == Placement::separate && count > 0)
      std::memcpy(output.raw_data(), input.raw_data(), input.nbytes());
    return issue(context, output.nbytes(), [=, this, input = input, output = output] {
      const MPI_Datatype type = mpi_element_type(input.dtype());
      if (placement == Placement::in_place)
        MERIDIAN_MPI_CHECK(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, output.raw_data(),
                                         count, type, comm_));
      else
        MERIDIAN_MPI_CHECK(
            MPI_Allgather(input.raw_data(), count, type, output.raw_data(), count, type, comm_));
    });
  }

  WorkHandle broadcast(Tensor& tensor, int root) override {
    const OpContext context = this->context("broadcast");
    check_tensor(context, "tensor", tensor, Device::cpu());
    check_root(context, root);
    const int count = mpi_count(context, tensor.numel());
    return issue(context, tensor.nbytes(), [=, this, tensor = tensor] {
      MERIDIAN_MPI_CHECK(
          MPI_Bcast(tensor.raw_data(), count, mpi_element_type(tensor.dtype()), root, comm_));
    });
  }

  WorkHandle barrier() override {
    return issue(context("barrier"), 0, [this] { MERIDIAN_MPI_CHECK(MPI_Barrier(comm_)); });
  }

  WorkHandle send(const Tensor& tensor, int dst, int tag) override {
    return exchange("send", {PeerTransfer::send(tensor, dst, tag)});
  }

  WorkHandle recv(Tensor& tensor, int src, int tag) override {
    return exchange("recv", {PeerTransfer::recv(tensor, src, tag)});
  }

  WorkHandle send_recv(const std::vector<PeerTransfer>& transfers) override {
    return exchange("send_recv", transfers);
  }

  std::shared_ptr<Communicator> split(int color, int key, const std::string& name) override {
    const OpContext context = this->context("split");
    if (name.empty()) MERIDIAN_FAIL("split on group ", name_, ": the new group needs a name");
    auto child = std::make_shared<MPI_Comm>(MPI_COMM_NULL);
    const int mpi_color = color < 0 ? MPI_UNDEFINED : color;
    if (size_ == 1) {
      // Nothing to agree on with other ranks; the call is local.
      MERIDIAN_MPI_CHECK(MPI_Comm_split(comm_, mpi_color, key, child.get()));
    } else {
      // Through the queue: MPI_Comm_split is a collective on this communicator and must take its
      // place in the order of the others.
      issue(context, 0, [=, this] {
        MERIDIAN_MPI_CHECK(MPI_Comm_split(comm_, mpi_color, key, child.get()));
      })->wait();
    }
    if (*child == MPI_COMM_NULL) return nullptr;
    return std::make_shared<MpiCommunicator>(*child, name, watchdog_);
  }

 private:
  OpContext context(std::string_view op) const { return {op, name_, size_}; }

  // Numbers the operation and hands it to the comm thread; a group of one has nothing to
  // communicate (the caller already did any local copy) and completes at once.
  WorkHandle issue(const OpContext& context, size_t bytes, MpiWorker::BlockingCall call) {
    std::lock_guard<std::mutex> lock(issue_mutex_);
    auto work = std::make_shared<HostWork>(
        WorkInfo{std::string(context.op), name_, ++sequence_, size_, bytes},
        worker_ ? worker_->executor() : nullptr);
    if (size_ == 1) {
      work->complete();
      return work;
    }
    watchdog_->watch(work);
    worker_->run_blocking(work, std::move(call));
    return work;
  }

  WorkHandle exchange(std::string_view op, const std::vector<PeerTransfer>& transfers) {
    const OpContext context = this->context(op);
    size_t bytes = 0;
    for (const PeerTransfer& transfer : transfers) {
      check_tensor(
          context,
          transfer.direction == PeerTransfer::Direction::send ? "sent tensor" : "received tensor",
          transfer.tensor, Device::cpu());
      check_peer(context, transfer.peer, rank_);
      if (transfer.tag < 0 || transfer.tag > max_tag_)
        MERIDIAN_FAIL(op, " on group ", name_, ": tag ", transfer.tag, " is outside 0..", max_tag_);
      mpi_count(context, transfer.tensor.numel());
      bytes += transfer.tensor.nbytes();
    }
    std::lock_guard<std::mutex> lock(issue_mutex_);
    auto work = std::make_shared<HostWork>(
        WorkInfo{std::string(op), name_, ++sequence_, size_, bytes},
        worker_ ? worker_->executor() : nullptr);
    if (transfers.empty()) {
      work->complete();
      return work;
    }
    watchdog_->watch(work);
    worker_->post(work, [this, transfers] {
      std::vector<PostedRequest> posted;
      posted.reserve(transfers.size());
      for (const PeerTransfer& transfer : transfers) {
        const Tensor& tensor = transfer.tensor;
        const MPI_Datatype type = mpi_element_type(tensor.dtype());
        const int count = static_cast<int>(tensor.numel());
        PostedRequest request;
        request.datatype = type;
        if (transfer.direction == PeerTransfer::Direction::send) {
          request.description =
              detail::concat("send to rank ", transfer.peer, " (tag ", transfer.tag, ")");
          MERIDIAN_MPI_CHECK(MPI_Isend(tensor.raw_data(), count, type, transfer.peer, transfer.tag,
                                       comm_, &request.request));
        } else {
          request.expected_count = count;
          request.description =
              detail::concat("recv from rank ", transfer.peer, " (tag ", transfer.tag, ")");
          MERIDIAN_MPI_CHECK(MPI_Irecv(tensor.raw_data(), count, type, transfer.peer, transfer.tag,
                                       comm_, &request.request));
        }
        posted.push_back(std::move(request));
      }
      return posted;
    });
    return work;
  }

  MPI_Comm comm_;
  std::string name_;
  std::shared_ptr<Watchdog> watchdog_;
  int rank_ = 0;
  int size_ = 0;
  int max_tag_ = 32767;
  std::mutex issue_mutex_;  // sequence numbers follow the order operations reach the queue
  uint64_t sequence_ = 0;
  std::unique_ptr<MpiWorker> worker_;  // absent for a group of one
};

}  // namespace

std::shared_ptr<Communicator> create_mpi_world_communicator(std::shared_ptr<Watchdog> watchdog) {
  MERIDIAN_CHECK(watchdog != nullptr, "the MPI world communicator needs a watchdog");
  int provided = MPI_THREAD_SINGLE;
  MERIDIAN_MPI_CHECK(MPI_Query_thread(&provided));
  if (provided != MPI_THREAD_MULTIPLE)
    MERIDIAN_FAIL(
        "the MPI backend needs MPI initialised with MPI_THREAD_MULTIPLE (comm threads "
        "call MPI concurrently); MPI provides level ",
        provided);
  MPI_Comm world = MPI_COMM_NULL;
  MERIDIAN_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &world));
  // Errors come back as return codes (checked everywhere) instead of MPI aborting on its own.
  MERIDIAN_MPI_CHECK(MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN));
  return std::make_shared<MpiCommunicator>(world, "world", std::move(watchdog));
}

}  // namespace meridian::comm

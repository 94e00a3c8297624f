#pragma once
// The NCCL backend: collectives on CUDA tensors (built only when MERIDIAN_CUDA is on).
//
// Bootstrap (llm.c zero.cuh, nccl-tests): rank 0 of the group calls ncclGetUniqueId, the id is
// broadcast over the group's MPI communicator (the `bootstrap` below, any host Communicator of
// the same ranks), every rank binds its GPU and calls ncclCommInitRank.
//
// Streams: each communicator issues on its own CUDA stream. An operation first makes that stream
// wait for an event recorded on the caller's compute stream (so it sees the values computed so
// far), then runs, then records a completion event. Work::wait() makes the compute stream wait for
// that event and returns without blocking the host: kernels launched afterwards see the result.
// Work::is_completed() queries the event. The watchdog watches the events like any other work.
//
// Point to point: NCCL sends block the GPU until the peer's recv runs, so two ranks that each
// send() and then recv() would deadlock; post both halves together with send_recv() (one NCCL
// group call). NCCL ignores tags and matches transfers per peer in issue order.
#include <cuda_runtime_api.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>

#include "parallel/comm/communicator.h"
#include "parallel/comm/watchdog.h"

struct ncclComm;

namespace meridian::comm {

struct NcclOptions {
  int device_index = 0;  // the GPU this rank drives (local rank, from the launcher)
  cudaStream_t compute_stream = nullptr;  // the stream producing and consuming the tensors
  std::shared_ptr<Watchdog> watchdog;     // required
};

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap` (blocking): a group of the same ranks, named like the new one.
  static std::shared_ptr<NcclCommunicator> create(std::shared_ptr<Communicator> bootstrap,
                                                  NcclOptions options);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return bootstrap_->name(); }
  std::string_view backend() const override { return "nccl"; }

  WorkHandle all_reduce(Tensor& tensor, ReduceOp op) override;
  WorkHandle reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) override;
  WorkHandle all_gather(const Tensor& input, Tensor& output) override;
  WorkHandle broadcast(Tensor& tensor, int root) override;
  WorkHandle send(const Tensor& tensor, int dst, int tag) override;
  WorkHandle recv(Tensor& tensor, int src, int tag) override;
  WorkHandle send_recv(const std::vector<PeerTransfer>& transfers) override;
  WorkHandle barrier() override;
  // Splits the bootstrap group, then bootstraps NCCL on the new group.
  std::shared_ptr<Communicator> split(int color, int key, const std::string& name) override;

  cudaStream_t comm_stream() const { return comm_stream_; }
  cudaStream_t compute_stream() const { return compute_stream_; }
  // Later operations order against this stream (e.g. after the trainer switches streams).
  void set_compute_stream(cudaStream_t stream);

  NcclCommunicator(std::shared_ptr<Communicator> bootstrap, NcclOptions options,
                   ncclComm* comm);  // use create()

 private:
  template <class Launch>
  WorkHandle issue(std::string_view op, size_t bytes, std::vector<Tensor> buffers, Launch&& launch);

  std::shared_ptr<Communicator> bootstrap_;
  NcclOptions options_;
  ncclComm* comm_;
  int rank_ = 0;
  int size_ = 0;
  cudaStream_t comm_stream_ = nullptr;
  cudaStream_t compute_stream_ = nullptr;
  void* barrier_scratch_ = nullptr;
  std::shared_ptr<std::atomic<bool>> comm_alive_ = std::make_shared<std::atomic<bool>>(
      true);  // one float on the device: barrier() all-reduces it
  std::mutex issue_mutex_;
  uint64_t sequence_ = 0;
  // Issued operations hold their tensors here until the GPU is done with them, even when the
  // caller dropped the handle (a freed buffer would otherwise be reused under NCCL's feet).
  std::deque<std::shared_ptr<Work>> in_flight_;
};

}  // namespace meridian::comm

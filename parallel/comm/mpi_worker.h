#pragma once
// MpiWorker: the comm thread of one MPI communicator (internal to the MPI backend).
//
// Why a thread: Open MPI only moves data while some thread is inside an MPI call, so a collective
// started with MPI_I* while the compute thread runs would not advance until the compute thread
// came back to MPI. The worker is that thread. It executes the communicator's operations one at a
// time in issue order (the order every rank issued them in), with the *blocking* MPI calls for
// collectives: they take Open MPI's tuned algorithms, and measured on this project's 2-core test
// machine the libnbc non-blocking collectives (MPI_Iallreduce) ran at about half their bandwidth.
//
// A caller that waits for an operation which is next in line while nothing runs executes it
// itself (HostExecutor::run_if_next): a collective waited for at once (tensor-parallel style, or
// the benchmark) then costs what the raw MPI call costs, without two thread hand-offs. The order
// is unchanged: only the head of the queue is taken, and only one operation runs at a time. The
// wake-up that issuing sends the worker often pre-empts the issuing thread on its core, and the
// worker would win the race for the operation; so the worker yields once before taking an
// operation issued in the last kCallerHeadStart, giving a caller that waits at once its chance.
//
// Point-to-point transfers are different: a blocking send waits for its matching recv, so two
// neighbours sending to each other at once would deadlock. The worker posts them with
// MPI_Isend/MPI_Irecv and keeps testing them to completion between operations; while a blocking
// collective runs, that collective's progress engine moves them too. When only transfers are
// pending it polls with a backoff (yield, then short sleeps up to kMaxPollSleep) so that it does
// not take a core from the compute thread, except while a caller is blocked in wait() on this
// communicator: that caller's core is free, and the worker polls without sleeping (a large
// message moves in many fragments, each needing a poll).
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parallel/comm/work.h"

namespace meridian::comm {

// One posted request and what a recv expects to receive (elements of `datatype`), so that a
// mismatched message size is an error rather than silently short data.
struct PostedRequest {
  MPI_Request request = MPI_REQUEST_NULL;
  MPI_Datatype datatype = MPI_DATATYPE_NULL;
  int expected_count = -1;  // recv: elements expected; send: -1 (not checked)
  std::string description;  // "recv from rank 1 (tag 0)"
};

class MpiWorker {
 public:
  // Runs the whole operation (a blocking MPI call) on the worker or on a waiting caller.
  using BlockingCall = std::function<void()>;
  // Runs on the worker thread, posts non-blocking requests and returns them without waiting.
  using PostCall = std::function<std::vector<PostedRequest>()>;

  static constexpr auto kMaxPollSleep = std::chrono::microseconds(250);
  static constexpr auto kCallerHeadStart = std::chrono::microseconds(100);

  explicit MpiWorker(const std::string& group_name);
  // Finishes everything already issued (other ranks expect it), then stops the thread.
  ~MpiWorker();
  MpiWorker(const MpiWorker&) = delete;
  MpiWorker& operator=(const MpiWorker&) = delete;

  // Give it to the HostWorks of this communicator (see HostExecutor).
  std::shared_ptr<HostExecutor> executor() const { return state_; }

  // Both queue behind everything issued before and complete `work` when done. The buffers
  // (tensors) captured by the call stay alive until then.
  void run_blocking(std::shared_ptr<HostWork> work, BlockingCall call);
  void post(std::shared_ptr<HostWork> work, PostCall call);

 private:
  struct Task {
    std::shared_ptr<HostWork> work;
    BlockingCall blocking;  // exactly one of the two is set
    PostCall post;
    std::chrono::steady_clock::time_point issued = std::chrono::steady_clock::now();
  };

  // The queue and what guards it, shared with the works (which may outlive the worker: by then
  // the queue is empty) so that a waiting caller can run the next operation or wake the worker.
  struct State final : HostExecutor {
    explicit State(std::string group) : group_name(std::move(group)) {}
    void run_if_next(HostWork& work) override;
    void caller_waiting(bool waiting) override;
    // Runs a blocking task on the calling thread; the caller has set `executing`.
    void run_blocking_task(Task& task);
    // Fails the task; later ones fail at once (the ranks no longer agree on what ran).
    void fail_task(Task& task, const std::string& reason);
    // Empty while the group is usable; needs `mutex` not held.
    std::string broken_reason_now();

    const std::string group_name;
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<Task> queue;
    bool executing = false;  // an operation is running (on the worker or a waiting caller)
    bool stopping = false;
    std::string broken_reason;
    std::atomic<int> callers_waiting{0};
  };
  struct InFlight {
    Task task;  // keeps the captured buffers alive until the requests complete
    std::vector<PostedRequest> requests;
  };

  void enqueue(Task task);
  void run();
  void post_task(Task& task);
  bool poll_in_flight();  // true when something completed

  const std::shared_ptr<State> state_;
  std::vector<InFlight> in_flight_;  // worker thread only
  std::thread thread_;
};

}  // namespace meridian::comm

#pragma once
// Work: the handle every collective returns. The caller keeps computing and waits when it needs the
// result; the watchdog holds the same handle to notice operations that never finish.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace meridian::comm {

// What an operation is, in the words a stuck job should print.
struct WorkInfo {
  std::string op;         // "all_reduce", "send", ...
  std::string group;      // the communicator's name: "world", "tp", "dp", "pp", ...
  uint64_t sequence = 0;  // per communicator, from 1, in issue order (the same on every rank)
  int group_size = 0;
  size_t bytes = 0;  // payload of this rank (input buffer size)

  // "all_reduce #17 on group dp (2 ranks, 4096 bytes)"
  std::string describe() const;
};

class Work {
 public:
  explicit Work(WorkInfo info) : info_(std::move(info)) {}
  virtual ~Work() = default;
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;

  // Blocks until the operation's result may be used (MPI: the buffers hold the result; NCCL: the
  // caller's compute stream is ordered after the operation). Throws meridian::Error when it
  // failed, when the watchdog gave up on it, or when an earlier failure broke the communicator.
  virtual void wait() = 0;
  // Never blocks. True once the operation has finished, successfully or not.
  virtual bool is_completed() const = 0;
  // Marks the operation failed; wait() throws `reason` (the first reason wins). Backends call it
  // when a call returns an error, the watchdog when the operation outlives the timeout.
  virtual void fail(const std::string& reason) = 0;

  const WorkInfo& info() const { return info_; }

 private:
  WorkInfo info_;
};

using WorkHandle = std::shared_ptr<Work>;

class HostWork;

// What completes HostWorks (the MPI backend's comm thread), as seen from a caller in wait().
class HostExecutor {
 public:
  virtual ~HostExecutor() = default;
  // Runs `work` on the calling thread when it is the next operation and none is running: a caller
  // that waits at once (a blocking-style collective) then pays no hand-off to another thread.
  virtual void run_if_next(HostWork& work) = 0;
  // A caller starts / stops blocking in wait(); its core is free meanwhile.
  virtual void caller_waiting(bool waiting) = 0;
};

// Work completed by a host thread: the MPI backend's comm thread, or at once for a size-1 group.
class HostWork final : public Work {
 public:
  explicit HostWork(WorkInfo info, std::shared_ptr<HostExecutor> executor = nullptr)
      : Work(std::move(info)), executor_(std::move(executor)) {}

  void wait() override;
  bool is_completed() const override;
  void fail(const std::string& reason) override;
  void complete();  // success; ignored after a failure

 private:
  enum State : int { pending = 0, succeeded = 1, failed = 2 };
  std::shared_ptr<HostExecutor> executor_;
  std::atomic<int> state_{pending};
  mutable std::mutex error_mutex_;
  std::string error_;
};

}  // namespace meridian::comm

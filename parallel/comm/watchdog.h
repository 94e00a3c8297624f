#pragma once
// Watchdog: notices communication that never finishes. A rank whose peer crashed or skipped a
// collective would otherwise wait forever; instead, once an operation is older than the timeout,
// the watchdog fails it (its wait() throws) and calls the timeout handler with a message that says
// which operation on which group is stuck. The launcher's handler prints it with the rank and
// aborts the whole job; the comm layer itself never ends the process.
//
// One watchdog serves a communicator and everything split from it (they share it), so one thread
// watches a whole process.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "parallel/comm/work.h"

namespace meridian::comm {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;
  using TimeoutHandler = std::function<void(const std::string& message)>;

  explicit Watchdog(std::chrono::milliseconds timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Applies to operations already watched too (their age counts from when they were issued).
  void set_timeout(std::chrono::milliseconds timeout);
  std::chrono::milliseconds timeout() const;
  // Runs on the watchdog's thread, once per operation that times out.
  void set_timeout_handler(TimeoutHandler handler);

  // Starts the clock on an operation. Only a weak reference is kept: a finished operation nobody
  // holds any more simply drops out.
  void watch(const std::shared_ptr<Work>& work);
  size_t watched_count() const;

  // "collective all_reduce #17 on group dp (2 ranks, 4096 bytes) did not complete within 5 s"
  static std::string timeout_message(const WorkInfo& info, std::chrono::milliseconds timeout);

 private:
  struct Watched {
    std::weak_ptr<Work> work;
    Clock::time_point issued;
  };

  void run();
  std::chrono::milliseconds poll_interval() const;  // needs mutex_

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::chrono::milliseconds timeout_;
  TimeoutHandler handler_;
  std::vector<Watched> watched_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the fields above exist
};

}  // namespace meridian::comm

#pragma once
// Stopping a job cleanly on SIGTERM / SIGINT / SIGUSR1 (schedulers send SIGTERM to every rank
// before they kill a job; mpirun forwards SIGUSR1 to every rank, while on SIGTERM it kills the
// ranks after its odls_base_sigkill_timeout, 1 s by default).
//
// Signal handlers may do almost nothing safely, and a rank that stops alone leaves its peers
// stuck in the next collective. So the signals are blocked in every thread and one watcher thread
// receives them (sigtimedwait): the first sets a flag that the program polls between steps
// (Runtime::stop_requested, or Runtime::agree_to_stop so every rank stops at the same step); a
// second signal, or the grace period running out, aborts the job.
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace meridian::launcher {

class StopSignals {
 public:
  using AbortFunction = std::function<void(const std::string& message, int exit_code)>;

  // Blocks the stop signals in the calling thread. Threads created afterwards inherit the mask,
  // so call it before any other thread exists (the Runtime does, before MPI_Init).
  static void block_in_this_thread();

  // Starts the watcher; `abort` ends the job (second signal, grace period over).
  StopSignals(std::chrono::milliseconds grace_period, AbortFunction abort);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  bool stop_requested() const { return stop_signal_.load(std::memory_order_acquire) != 0; }
  int stop_signal() const { return stop_signal_.load(std::memory_order_acquire); }  // 0: none
  void set_grace_period(std::chrono::milliseconds grace_period);

 private:
  void run();

  std::atomic<int> stop_signal_{0};
  std::atomic<bool> stopping_watcher_{false};
  std::mutex mutex_;
  std::chrono::milliseconds grace_period_;
  AbortFunction abort_;
  std::thread thread_;
};

}  // namespace meridian::launcher

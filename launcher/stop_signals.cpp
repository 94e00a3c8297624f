#include "launcher/stop_signals.h"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "launcher/log.h"

namespace meridian::launcher {
namespace {

sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  return set;
}

std::string signal_name(int signal_number) {
  switch (signal_number) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "signal " + std::to_string(signal_number);
  }
}

std::string format_seconds(std::chrono::milliseconds duration) {
  return detail::concat(static_cast<double>(duration.count()) / 1000.0, " s");
}

// How often the watcher wakes without a signal, to notice the grace period ending.
constexpr timespec kWatchInterval = {0, 100'000'000};

}  // namespace

void StopSignals::block_in_this_thread() {
  const sigset_t set = stop_signal_set();
  if (const int status = pthread_sigmask(SIG_BLOCK, &set, nullptr); status != 0)
    MERIDIAN_FAIL("pthread_sigmask failed: ", std::strerror(status));
}

StopSignals::StopSignals(std::chrono::milliseconds grace_period, AbortFunction abort)
    : grace_period_(grace_period), abort_(std::move(abort)) {
  block_in_this_thread();  // in case the caller did not: the watcher must be the only receiver
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "stop-signals");
}

StopSignals::~StopSignals() {
  stopping_watcher_.store(true, std::memory_order_release);
  thread_.join();
}

void StopSignals::set_grace_period(std::chrono::milliseconds grace_period) {
  std::lock_guard<std::mutex> lock(mutex_);
  grace_period_ = grace_period;
}

void StopSignals::run() {
  const sigset_t set = stop_signal_set();
  std::chrono::steady_clock::time_point first_signal_at;
  while (!stopping_watcher_.load(std::memory_order_acquire)) {
    siginfo_t info;
    const int received = sigtimedwait(&set, &info, &kWatchInterval);
    std::chrono::milliseconds grace;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      grace = grace_period_;
    }
    if (received > 0) {
      const int first = stop_signal();
      if (first == 0) {
        first_signal_at = std::chrono::steady_clock::now();
        stop_signal_.store(received, std::memory_order_release);
        log_warn("received ", signal_name(received),
                 "; stopping at the next step (a second "
                 "signal, or ",
                 format_seconds(grace), " without stopping, aborts the job)");
      } else {
        abort_(detail::concat("received ", signal_name(received), " after ", signal_name(first),
                              "; aborting the job"),
               128 + received);
        return;
      }
    } else if (received < 0 && errno != EAGAIN && errno != EINTR) {
      log_error("sigtimedwait failed: ", std::strerror(errno), "; stop signals are ignored now");
      return;
    }
    if (stop_requested() && std::chrono::steady_clock::now() - first_signal_at > grace) {
      abort_(detail::concat("did not stop within ", format_seconds(grace), " of ",
                            signal_name(stop_signal()), "; aborting the job"),
             128 + stop_signal());
      return;
    }
  }
}

}  // namespace meridian::launcher

#include "parallel/comm/watchdog.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace meridian::comm {
namespace {

std::string format_seconds(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return detail::concat(duration.count() / 1000, " s");
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g s", static_cast<double>(duration.count()) / 1000.0);
  return text;
}

bool is_point_to_point(const std::string& op) {
  return op == "send" || op == "recv" || op == "send_recv";
}

}  // namespace

Watchdog::Watchdog(std::chrono::milliseconds timeout) : timeout_(timeout) {
  MERIDIAN_CHECK(timeout.count() > 0, "the communication timeout must be positive, got ",
                 timeout.count(), " ms");
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Watchdog::set_timeout(std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0)
    MERIDIAN_FAIL("the communication timeout must be positive, got ", timeout.count(), " ms");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    timeout_ = timeout;
  }
  wake_.notify_all();  // a shorter timeout needs a shorter poll interval now
}

std::chrono::milliseconds Watchdog::timeout() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return timeout_;
}

void Watchdog::set_timeout_handler(TimeoutHandler handler) {
  std::lock_guard<std::mutex> lock(mutex_);
  handler_ = std::move(handler);
}

void Watchdog::watch(const std::shared_ptr<Work>& work) {
  std::lock_guard<std::mutex> lock(mutex_);
  watched_.push_back({work, Clock::now()});
}

size_t Watchdog::watched_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return watched_.size();
}

std::string Watchdog::timeout_message(const WorkInfo& info, std::chrono::milliseconds timeout) {
  return detail::concat(is_point_to_point(info.op) ? "point-to-point " : "collective ",
                        info.describe(), " did not complete within ", format_seconds(timeout));
}

std::chrono::milliseconds Watchdog::poll_interval() const {
  // Fine enough that a timeout fires within ~10% of its value, coarse enough to cost nothing.
  return std::clamp(timeout_ / 10, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
}

void Watchdog::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, poll_interval());
    if (stopping_) break;

    const auto now = Clock::now();
    std::vector<std::shared_ptr<Work>> expired;
    std::erase_if(watched_, [&](const Watched& entry) {
      std::shared_ptr<Work> work = entry.work.lock();
      if (!work || work->is_completed()) return true;
      if (now - entry.issued < timeout_) return false;
      expired.push_back(std::move(work));
      return true;
    });
    if (expired.empty()) continue;

    // Oldest first: the first operation to get stuck is the one that explains the others.
    const auto timeout = timeout_;
    const TimeoutHandler handler = handler_;
    lock.unlock();
    for (const auto& work : expired) {
      const std::string message = timeout_message(work->info(), timeout);
      work->fail(message);
      if (handler) handler(message);
    }
    lock.lock();
  }
}

}  // namespace meridian::comm

#include "parallel/comm/work.h"

#include "core/error.h"

namespace meridian::comm {

std::string WorkInfo::describe() const {
  return detail::concat(op, " #", sequence, " on group ", group, " (", group_size,
                        group_size == 1 ? " rank, " : " ranks, ", bytes, " bytes)");
}

void HostWork::wait() {
  // std::atomic::wait sleeps in the kernel (futex): a waiting compute thread must leave the core
  // to the comm thread, which on a small machine shares it.
  int state = state_.load(std::memory_order_acquire);
  if (state == pending && executor_) {
    executor_->run_if_next(*this);
    state = state_.load(std::memory_order_acquire);
  }
  if (state == pending) {
    if (executor_) executor_->caller_waiting(true);
    while (state == pending) {
      state_.wait(pending, std::memory_order_acquire);
      state = state_.load(std::memory_order_acquire);
    }
    if (executor_) executor_->caller_waiting(false);
  }
  if (state == failed) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    throw Error(error_);
  }
}

bool HostWork::is_completed() const { return state_.load(std::memory_order_acquire) != pending; }

void HostWork::fail(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(error_mutex_);
    int expected = pending;
    if (!state_.compare_exchange_strong(expected, failed, std::memory_order_acq_rel)) return;
    error_ = reason;
  }
  state_.notify_all();
}

void HostWork::complete() {
  int expected = pending;
  if (state_.compare_exchange_strong(expected, succeeded, std::memory_order_acq_rel))
    state_.notify_all();
}

}  // namespace meridian::comm

#include "parallel/comm/mpi_worker.h"

#include <pthread.h>

#include <algorithm>

#include "core/error.h"
#include "parallel/comm/mpi_check.h"

namespace meridian::comm {
namespace {

// Polls that only yield before the worker starts sleeping between polls: a transfer that is about
// to finish (the peer already posted) completes without sleep latency.
constexpr int kYieldingPolls = 32;
constexpr auto kMinPollSleep = std::chrono::microseconds(20);

}  // namespace

void MpiWorker::State::run_if_next(HostWork& work) {
  std::unique_lock<std::mutex> lock(mutex);
  if (executing || queue.empty() || queue.front().work.get() != &work || !queue.front().blocking)
    return;
  Task task = std::move(queue.front());
  queue.pop_front();
  executing = true;
  lock.unlock();
  run_blocking_task(task);
  lock.lock();
  executing = false;
  // Wake the worker only if it has something to do: a wake-up it does not need costs a context
  // switch in the middle of the ranks' next collective.
  const bool worker_needed = !queue.empty() || stopping;
  lock.unlock();
  if (worker_needed) wake.notify_one();
}

void MpiWorker::State::caller_waiting(bool waiting) {
  {
    // Under the lock: a worker that just decided to sleep between polls must not miss this.
    std::lock_guard<std::mutex> lock(mutex);
    callers_waiting.fetch_add(waiting ? 1 : -1, std::memory_order_relaxed);
  }
  if (waiting) wake.notify_one();
}

std::string MpiWorker::State::broken_reason_now() {
  std::lock_guard<std::mutex> lock(mutex);
  return broken_reason;
}

void MpiWorker::State::run_blocking_task(Task& task) {
  if (const std::string broken = broken_reason_now(); !broken.empty()) {
    task.work->fail(detail::concat(task.work->info().describe(), " was not run: group ", group_name,
                                   " is unusable after an earlier failure: ", broken));
    return;
  }
  try {
    task.blocking();
    task.work->complete();
  } catch (const std::exception& error) {
    fail_task(task, error.what());
  }
}

void MpiWorker::State::fail_task(Task& task, const std::string& reason) {
  const std::string message = detail::concat(task.work->info().describe(), ": ", reason);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (broken_reason.empty()) broken_reason = message;
  }
  task.work->fail(message);
}

MpiWorker::MpiWorker(const std::string& group_name) : state_(std::make_shared<State>(group_name)) {
  thread_ = std::thread([this] { run(); });
  // "comm-dp" in top/gdb; Linux limits thread names to 15 characters.
  const std::string thread_name = ("comm-" + group_name).substr(0, 15);
  pthread_setname_np(thread_.native_handle(), thread_name.c_str());
}

MpiWorker::~MpiWorker() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  thread_.join();
}

void MpiWorker::run_blocking(std::shared_ptr<HostWork> work, BlockingCall call) {
  enqueue(Task{std::move(work), std::move(call), nullptr});
}

void MpiWorker::post(std::shared_ptr<HostWork> work, PostCall call) {
  enqueue(Task{std::move(work), nullptr, std::move(call)});
}

void MpiWorker::enqueue(Task task) {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->queue.push_back(std::move(task));
  }
  state_->wake.notify_one();
}

void MpiWorker::run() {
  State& state = *state_;
  std::unique_lock<std::mutex> lock(state.mutex);
  const auto can_start = [&] { return !state.queue.empty() && !state.executing; };
  int idle_polls = 0;
  auto poll_sleep = kMinPollSleep;
  const HostWork* yielded_for = nullptr;
  for (;;) {
    if (can_start()) {
      const Task& next = state.queue.front();
      if (next.blocking && next.work.get() != yielded_for &&
          std::chrono::steady_clock::now() - next.issued < kCallerHeadStart) {
        yielded_for = next.work.get();  // once per operation: then the worker takes it
        lock.unlock();
        std::this_thread::yield();
        lock.lock();
        continue;
      }
      Task task = std::move(state.queue.front());
      state.queue.pop_front();
      state.executing = true;
      lock.unlock();
      if (task.blocking)
        state.run_blocking_task(task);
      else
        post_task(task);
      poll_in_flight();
      idle_polls = 0;
      poll_sleep = kMinPollSleep;
      lock.lock();
      state.executing = false;
      continue;
    }
    if (in_flight_.empty()) {
      // Stop once everything issued has run (a waiting caller may still be running the last one).
      if (state.stopping && state.queue.empty() && !state.executing) return;
      state.wake.wait(lock, [&] { return can_start() || (state.stopping && !state.executing); });
      continue;
    }
    // Posted transfers are pending: test them, backing off so the thread stays cheap, unless a
    // caller waits (its core is free).
    lock.unlock();
    const bool progressed = poll_in_flight();
    const bool caller_waits = state.callers_waiting.load(std::memory_order_relaxed) > 0;
    if (progressed || caller_waits || idle_polls < kYieldingPolls) {
      if (progressed) {
        idle_polls = 0;
        poll_sleep = kMinPollSleep;
      } else {
        ++idle_polls;
        std::this_thread::yield();
      }
      lock.lock();
      continue;
    }
    lock.lock();
    // A new operation or a waiting caller wakes it early.
    state.wake.wait_for(lock, poll_sleep, [&] {
      return can_start() || state.callers_waiting.load(std::memory_order_relaxed) > 0;
    });
    poll_sleep = std::min<std::chrono::microseconds>(poll_sleep * 2, kMaxPollSleep);
  }
}

void MpiWorker::post_task(Task& task) {
  if (const std::string broken = state_->broken_reason_now(); !broken.empty()) {
    task.work->fail(detail::concat(task.work->info().describe(), " was not run: group ",
                                   state_->group_name,
                                   " is unusable after an earlier failure: ", broken));
    return;
  }
  try {
    std::vector<PostedRequest> requests = task.post();
    in_flight_.push_back({std::move(task), std::move(requests)});
  } catch (const std::exception& error) {
    state_->fail_task(task, error.what());
  }
}

bool MpiWorker::poll_in_flight() {
  bool progressed = false;
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    std::vector<MPI_Request> requests;
    requests.reserve(it->requests.size());
    for (const PostedRequest& posted : it->requests) requests.push_back(posted.request);
    std::vector<MPI_Status> statuses(requests.size());
    int done = 0;
    try {
      MERIDIAN_MPI_CHECK(
          MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, statuses.data()));
      for (size_t i = 0; i < requests.size(); ++i) it->requests[i].request = requests[i];
      if (!done) {
        ++it;
        continue;
      }
      std::string mismatch;
      for (size_t i = 0; i < statuses.size(); ++i) {
        const PostedRequest& posted = it->requests[i];
        if (posted.expected_count < 0) continue;
        int received = 0;
        MERIDIAN_MPI_CHECK(MPI_Get_count(&statuses[i], posted.datatype, &received));
        if (received != posted.expected_count)
          mismatch = detail::concat(posted.description, " received ", received,
                                    " elements, expected ", posted.expected_count);
      }
      if (mismatch.empty())
        it->task.work->complete();
      else
        state_->fail_task(it->task, mismatch);
    } catch (const std::exception& error) {
      state_->fail_task(it->task, error.what());
    }
    it = in_flight_.erase(it);
    progressed = true;
  }
  return progressed;
}

}  // namespace meridian::comm

// The watchdog on its own (no MPI): an operation that outlives the timeout is failed and reported
// with its name, group, sequence number and size; finished ones are never reported.
#include "parallel/comm/watchdog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"

namespace meridian::testing {
namespace {

using namespace std::chrono_literals;
using comm::HostWork;
using comm::Watchdog;
using comm::WorkInfo;

struct Reports {
  std::mutex mutex;
  std::vector<std::string> messages;

  Watchdog::TimeoutHandler handler() {
    return [this](const std::string& message) {
      std::lock_guard<std::mutex> lock(mutex);
      messages.push_back(message);
    };
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return messages.size();
  }
};

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(Watchdog, ReportsAndFailsAStuckOperation) {
  Reports reports;
  Watchdog watchdog(200ms);
  watchdog.set_timeout_handler(reports.handler());
  auto stuck = std::make_shared<HostWork>(WorkInfo{"all_reduce", "dp", 17, 2, 4096});
  const auto start = std::chrono::steady_clock::now();
  watchdog.watch(stuck);

  ASSERT_TRUE(wait_until([&] { return reports.count() == 1; }, 5s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 1s);
  EXPECT_EQ(reports.messages[0],
            "collective all_reduce #17 on group dp (2 ranks, 4096 bytes) did not complete within "
            "0.2 s");
  EXPECT_TRUE(stuck->is_completed());
  try {
    stuck->wait();
    ADD_FAILURE() << "wait() on a timed-out operation returned";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), reports.messages[0]);
  }
}

TEST(Watchdog, IgnoresCompletedOperations) {
  Reports reports;
  Watchdog watchdog(100ms);
  watchdog.set_timeout_handler(reports.handler());
  auto done = std::make_shared<HostWork>(WorkInfo{"broadcast", "world", 1, 4, 8});
  watchdog.watch(done);
  done->complete();
  EXPECT_TRUE(wait_until([&] { return watchdog.watched_count() == 0; }, 2s));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(reports.count(), 0u);
  done->wait();  // completed successfully: no throw
}

TEST(Watchdog, NamesPointToPointOperationsAndWholeSeconds) {
  EXPECT_EQ(Watchdog::timeout_message(WorkInfo{"recv", "pp", 3, 2, 64}, 5s),
            "point-to-point recv #3 on group pp (2 ranks, 64 bytes) did not complete within 5 s");
}

TEST(Watchdog, RejectsNonPositiveTimeouts) {
  Watchdog watchdog(1s);
  EXPECT_THROW(watchdog.set_timeout(0ms), Error);
}

}  // namespace
}  // namespace meridian::testing

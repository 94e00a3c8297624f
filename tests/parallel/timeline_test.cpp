// The pipeline timeline (no communication): on the host's clock, and with a deferred clock such as
// the GPU's (marks whose times are known later), where events wait for their times until the window
// ends or flush() — and must land where the clock says, not where the host recorded them.
#include "parallel/pipeline/timeline.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace meridian::parallel {
namespace {

// A clock with scripted times: the anchor at `anchor_ns`, mark i at `mark_ns[i]`. Counts the waits.
class ScriptedClock final : public TimelineClock {
 public:
  ScriptedClock(int64_t anchor_ns, std::vector<int64_t> mark_ns, int* waits)
      : anchor_ns_(anchor_ns), mark_ns_(std::move(mark_ns)), waits_(waits) {}
  int64_t anchor() override {
    marks_ = 0;
    return anchor_ns_;
  }
  int64_t mark() override { return marks_++; }
  std::vector<int64_t> times() override {
    ++*waits_;
    return {mark_ns_.begin(), mark_ns_.begin() + marks_};
  }

 private:
  int64_t anchor_ns_;
  std::vector<int64_t> mark_ns_;
  int* waits_;
  int64_t marks_ = 0;
};

const TimelineEvent& find(const std::vector<TimelineEvent>& events, const std::string& name) {
  for (const TimelineEvent& event : events)
    if (event.name == name) return event;
  throw Error("no event " + name);
}

TEST(Timeline, DeferredClockPlacesEventsAtTheirMarksTimes) {
  int waits = 0;
  // Marks: forward 0–1, recv 2–3 (the stream stood still waiting), backward 4–5, window end 6, then
  // the optimizer 7–8 after the window.
  Timeline timeline(true, std::make_unique<ScriptedClock>(
                              1000, std::vector<int64_t>{1100, 1300, 1300, 1700, 1700, 2100, 2200, 2200, 2250}, &waits));
  timeline.begin_window();
  int64_t a = timeline.now(), b = timeline.now();
  timeline.record("F0", TimelineCategory::forward, TimelineTrack::compute, a, b);
  a = timeline.now(), b = timeline.now();
  timeline.record("recv", TimelineCategory::recv, TimelineTrack::communication, a, b);
  a = timeline.now(), b = timeline.now();
  timeline.record("B0", TimelineCategory::backward, TimelineTrack::compute, a, b);
  EXPECT_EQ(waits, 0) << "recording must not wait for the device";
  timeline.end_window();
  EXPECT_EQ(waits, 1);

  ASSERT_EQ(timeline.windows().size(), 1u);
  const StepWindow& window = timeline.windows()[0];
  EXPECT_EQ(window.start_ns, 1000);
  EXPECT_EQ(window.end_ns, 2200);
  EXPECT_EQ(window.compute_ns, 200 + 400);
  EXPECT_DOUBLE_EQ(window.bubble_fraction(), 1.0 - 600.0 / 1200.0);

  a = timeline.now(), b = timeline.now();
  timeline.record("optimizer", TimelineCategory::optimizer, TimelineTrack::compute, a, b);
  EXPECT_THROW(timeline.events(), Error) << "the optimizer's times are not known yet";
  timeline.flush();
  const std::vector<TimelineEvent>& events = timeline.events();
  EXPECT_EQ(find(events, "F0").start_ns, 1100);
  EXPECT_EQ(find(events, "F0").duration_ns, 200);
  EXPECT_EQ(find(events, "recv").start_ns, 1300);
  EXPECT_EQ(find(events, "recv").duration_ns, 400);
  EXPECT_EQ(find(events, "B0").start_ns, 1700);
  EXPECT_EQ(find(events, "optimizer").start_ns, 2200);
  EXPECT_EQ(find(events, "optimizer").duration_ns, 50);
  // The gaps of the window's compute: before F0, during the recv, after B0.
  std::vector<std::pair<int64_t, int64_t>> idle;
  for (const TimelineEvent& event : events)
    if (event.category == TimelineCategory::idle) idle.emplace_back(event.start_ns, event.duration_ns);
  EXPECT_EQ(idle, (std::vector<std::pair<int64_t, int64_t>>{{1000, 100}, {1300, 400}, {2100, 100}}));
}

TEST(Timeline, DeferredClockResolvesTheLastStepBeforeTheNextAnchor) {
  int waits = 0;
  Timeline timeline(true, std::make_unique<ScriptedClock>(0, std::vector<int64_t>{10, 20, 30, 40, 50}, &waits));
  timeline.begin_window();
  timeline.end_window();
  const int64_t a = timeline.now(), b = timeline.now();
  timeline.record("optimizer", TimelineCategory::optimizer, TimelineTrack::compute, a, b);
  // The next anchor restarts the marks: the optimizer's must be resolved first, or they would read
  // the new window's times.
  timeline.begin_window();
  timeline.end_window();
  EXPECT_EQ(find(timeline.events(), "optimizer").start_ns, 20);
  EXPECT_EQ(find(timeline.events(), "optimizer").duration_ns, 10);
}

TEST(Timeline, WithoutEventsOnlyTheWindowsAreKept) {
  int waits = 0;
  Timeline timeline(false, std::make_unique<ScriptedClock>(0, std::vector<int64_t>{10, 30, 40, 60}, &waits));
  timeline.begin_window();
  int64_t a = timeline.now(), b = timeline.now();
  timeline.record("F0", TimelineCategory::forward, TimelineTrack::compute, a, b);
  timeline.end_window();
  a = timeline.now(), b = timeline.now();
  timeline.record("optimizer", TimelineCategory::optimizer, TimelineTrack::compute, a, b);
  timeline.flush();
  EXPECT_TRUE(timeline.events().empty());
  EXPECT_EQ(timeline.windows().back().compute_ns, 20);
  EXPECT_EQ(timeline.windows().back().end_ns, 40);
}

TEST(Timeline, HostClockMeasuresAtOnce) {
  Timeline timeline(true);
  timeline.begin_window();
  const int64_t a = timeline.now();
  const int64_t b = timeline.now();
  EXPECT_LE(a, b);
  timeline.record("F0", TimelineCategory::forward, TimelineTrack::compute, a, b);
  EXPECT_EQ(find(timeline.events(), "F0").start_ns, a) << "no flush needed on the host's clock";
  timeline.end_window();
  EXPECT_GE(timeline.windows().back().end_ns, b);
}

TEST(Timeline, TheCpuReadsTheHostClock) { EXPECT_EQ(device_timeline_clock(Device::cpu()), nullptr); }

}  // namespace
}  // namespace meridian::parallel

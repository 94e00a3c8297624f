#pragma once
// A per-rank timeline of a pipeline run: what the rank computed (forward, backward, weight
// gradient), its transfers (send, recv) and the optimizer, each with start and duration, and the
// idle gaps of every step's schedule. It measures the bubble fraction — the share of the schedule
// window in which the rank did not compute — and can be written as a Chrome trace
// (chrome_trace.h) to look at in Perfetto or chrome://tracing.
//
// Times are steady-clock nanoseconds since the clock's epoch: on one machine every process reads
// the same monotonic clock, so the files of all ranks line up when merged. Where they are taken
// depends on the device: on the cpu the host's clock is read when an action starts and ends; on a
// GPU the host only issues the kernels, so the timeline marks the compute stream instead
// (TimelineClock, device_timeline_clock) and each time is when the GPU reached that point of the
// rank's work. A wait for a transfer is then the time the compute stream stood still.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/device.h"

namespace meridian::parallel {

enum class TimelineCategory : uint8_t {
  forward,
  backward,         // whole backward, or B (input gradients) of a split one
  weight_gradient,  // W
  send,
  recv,              // time spent waiting for a transfer to arrive
  data_parallel,     // waiting for gradient reductions inside the schedule
  optimizer,
  idle,              // a gap between compute inside a step's schedule
};
std::string_view category_name(TimelineCategory category);
// Whether time in this category counts as computing (the complement of the bubble).
bool is_compute(TimelineCategory category);

// Where an event is drawn: compute on one track, transfers (which overlap it) on another.
enum class TimelineTrack : uint8_t { compute = 0, communication = 1 };

struct TimelineEvent {
  std::string name;
  TimelineCategory category;
  TimelineTrack track;
  int64_t start_ns;
  int64_t duration_ns;
  nlohmann::json args;  // an object: micro_batch, chunk, peer, bytes, ...
};

struct StepWindow {
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  int64_t compute_ns = 0;
  double bubble_fraction() const;  // 1 − compute / (end − start)
};

// A clock whose readings are known only later: a mark is a number, turned into steady-clock
// nanoseconds by times(). The GPU's (device_timeline_clock) records an event on the compute stream.
class TimelineClock {
 public:
  virtual ~TimelineClock() = default;
  // Starts a window: a reference mark whose time is returned at once (the clock waits for it).
  // Marks made before it are forgotten, so times() must have been called for them.
  virtual int64_t anchor() = 0;
  virtual int64_t mark() = 0;
  // The time of every mark since the anchor, indexed by mark; may wait for the marks to be reached.
  virtual std::vector<int64_t> times() = 0;
};

// The clock of a timeline on `device`: null on the cpu (the host's clock, read at once), the compute
// stream's marks on a GPU.
std::unique_ptr<TimelineClock> device_timeline_clock(Device device);

class Timeline {
 public:
  // `keep_events`: store every event (for a trace file). Off, only the per-step windows are kept,
  // which is all the bubble measurement needs. `clock`: null reads the host's clock.
  explicit Timeline(bool keep_events = false, std::unique_ptr<TimelineClock> clock = nullptr)
      : keep_events_(keep_events), clock_(std::move(clock)) {}

  // The host's steady clock, in ns.
  static int64_t now_ns();
  // A point in the rank's work to pass to record(): the host's time on the cpu, a mark of the
  // timeline's clock otherwise.
  int64_t now();

  // An action from `start` to `end`, both from now(). With a clock, the event is kept until its
  // times are known: at the end of the window, or at flush().
  void record(std::string name, TimelineCategory category, TimelineTrack track, int64_t start, int64_t end,
              nlohmann::json args = nlohmann::json::object());

  // The schedule window of a step, from now to now. Compute recorded between the two calls counts
  // towards it; at the end the gaps between compute events become `idle` events. With a clock,
  // begin_window waits for the compute stream to reach it (it is idle at a step's start) and
  // end_window for the stream to pass the step's work.
  void begin_window();
  void end_window();
  // Resolves the events recorded since the last window ended (the optimizer's), so that events()
  // holds them; waits for the device with a clock.
  void flush();

  const std::vector<StepWindow>& windows() const { return windows_; }
  // Every event, once flushed.
  const std::vector<TimelineEvent>& events() const;
  bool keeps_events() const { return keep_events_; }
  // Mean bubble fraction over the windows from `first_window` on (warm-up steps can be left out);
  // 0 when there are none.
  double mean_bubble_fraction(size_t first_window = 0) const;

 private:
  void add(TimelineEvent event);  // an event with its times known
  void resolve(const std::vector<int64_t>& times);  // the pending events, given every mark's time

  bool keep_events_;
  std::unique_ptr<TimelineClock> clock_;
  struct Pending {
    TimelineEvent event;  // times not known yet
    int64_t start_mark, end_mark;
  };
  std::vector<Pending> pending_;  // with a clock: recorded, waiting for the clock's times
  bool in_window_ = false;
  std::vector<TimelineEvent> events_;
  std::vector<StepWindow> windows_;
  std::vector<std::pair<int64_t, int64_t>> window_compute_;  // compute intervals of the open window
};

}  // namespace meridian::parallel

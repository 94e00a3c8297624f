#pragma once
// A per-rank timeline of a pipeline run: what the rank computed (forward, backward, weight
// gradient), its transfers (send, recv) and the optimizer, each with start and duration, and the
// idle gaps of every step's schedule. It measures the bubble fraction — the share of the schedule
// window in which the rank did not compute — and can be written as a Chrome trace
// (chrome_trace.h) to look at in Perfetto or chrome://tracing.
//
// Times are steady-clock nanoseconds since the clock's epoch: on one machine every process reads
// the same monotonic clock, so the files of all ranks line up when merged.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

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

class Timeline {
 public:
  // `keep_events`: store every event (for a trace file). Off, only the per-step windows are kept,
  // which is all the bubble measurement needs.
  explicit Timeline(bool keep_events = false) : keep_events_(keep_events) {}

  static int64_t now_ns();

  void record(std::string name, TimelineCategory category, TimelineTrack track, int64_t start_ns, int64_t end_ns,
              nlohmann::json args = nlohmann::json::object());

  // The schedule window of a step. Compute recorded between the two calls counts towards it; at
  // the end the gaps between compute events become `idle` events.
  void begin_window(int64_t start_ns);
  void end_window(int64_t end_ns);

  const std::vector<StepWindow>& windows() const { return windows_; }
  const std::vector<TimelineEvent>& events() const { return events_; }
  bool keeps_events() const { return keep_events_; }
  // Mean bubble fraction over the windows from `first_window` on (warm-up steps can be left out);
  // 0 when there are none.
  double mean_bubble_fraction(size_t first_window = 0) const;

 private:
  bool keep_events_;
  bool in_window_ = false;
  std::vector<TimelineEvent> events_;
  std::vector<StepWindow> windows_;
  std::vector<std::pair<int64_t, int64_t>> window_compute_;  // compute intervals of the open window
};

}  // namespace meridian::parallel

#include "parallel/pipeline/timeline.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace meridian::parallel {

std::string_view category_name(TimelineCategory category) {
  switch (category) {
    case TimelineCategory::forward: return "forward";
    case TimelineCategory::backward: return "backward";
    case TimelineCategory::weight_gradient: return "weight_gradient";
    case TimelineCategory::send: return "send";
    case TimelineCategory::recv: return "recv";
    case TimelineCategory::data_parallel: return "data_parallel";
    case TimelineCategory::optimizer: return "optimizer";
    case TimelineCategory::idle: return "idle";
  }
  return "?";
}

bool is_compute(TimelineCategory category) {
  return category == TimelineCategory::forward || category == TimelineCategory::backward ||
         category == TimelineCategory::weight_gradient;
}

double StepWindow::bubble_fraction() const {
  const int64_t span = end_ns - start_ns;
  return span > 0 ? 1.0 - static_cast<double>(compute_ns) / static_cast<double>(span) : 0.0;
}

int64_t Timeline::now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t Timeline::now() { return clock_ ? clock_->mark() : now_ns(); }

void Timeline::record(std::string name, TimelineCategory category, TimelineTrack track, int64_t start, int64_t end,
                      nlohmann::json args) {
  // Without a clock, or when only the windows are kept, nothing but compute inside a window matters.
  if (!keep_events_ && !(in_window_ && is_compute(category))) return;
  if (clock_) {
    pending_.push_back({{std::move(name), category, track, 0, 0, std::move(args)}, start, end});
  } else {
    add({std::move(name), category, track, start, end - start, std::move(args)});
  }
}

void Timeline::add(TimelineEvent event) {
  if (in_window_ && is_compute(event.category))
    window_compute_.emplace_back(event.start_ns, event.start_ns + event.duration_ns);
  if (keep_events_) events_.push_back(std::move(event));
}

void Timeline::flush() {
  if (!pending_.empty()) resolve(clock_->times());
}

void Timeline::resolve(const std::vector<int64_t>& times) {
  const auto at = [&](int64_t mark) {
    MERIDIAN_CHECK(mark >= 0 && static_cast<size_t>(mark) < times.size(), "timeline: mark ", mark,
                   " is not from this window's clock");
    return times[static_cast<size_t>(mark)];
  };
  for (Pending& pending : pending_) {
    pending.event.start_ns = at(pending.start_mark);
    pending.event.duration_ns = at(pending.end_mark) - pending.event.start_ns;
    add(std::move(pending.event));
  }
  pending_.clear();
}

const std::vector<TimelineEvent>& Timeline::events() const {
  MERIDIAN_CHECK(pending_.empty(), "timeline: ", pending_.size(), " events wait for their times: flush() first");
  return events_;
}

void Timeline::begin_window() {
  MERIDIAN_CHECK(!in_window_, "timeline: a step window is already open");
  flush();  // the marks before the anchor are about to be forgotten
  const int64_t start_ns = clock_ ? clock_->anchor() : now_ns();
  in_window_ = true;
  window_compute_.clear();
  windows_.push_back({start_ns, start_ns, 0});
}

void Timeline::end_window() {
  MERIDIAN_CHECK(in_window_, "timeline: no step window is open");
  int64_t end_ns = 0;
  if (clock_) {
    const auto end = static_cast<size_t>(clock_->mark());
    const std::vector<int64_t> times = clock_->times();
    resolve(times);  // the window's compute, while it is still open
    end_ns = times.at(end);
  } else {
    end_ns = now_ns();
  }
  in_window_ = false;
  StepWindow& window = windows_.back();
  window.end_ns = end_ns;
  // Compute runs on one thread, so its intervals do not overlap; sorted, the gaps are the idle time.
  std::sort(window_compute_.begin(), window_compute_.end());
  int64_t cursor = window.start_ns;
  const auto idle_until = [&](int64_t until) {
    if (until > cursor && keep_events_)
      events_.push_back({"idle", TimelineCategory::idle, TimelineTrack::compute, cursor, until - cursor,
                         nlohmann::json::object()});
  };
  for (const auto& [begin, end] : window_compute_) {
    idle_until(begin);
    window.compute_ns += end - begin;
    cursor = std::max(cursor, end);
  }
  idle_until(end_ns);
  window_compute_.clear();
}

double Timeline::mean_bubble_fraction(size_t first_window) const {
  if (windows_.size() <= first_window) return 0.0;
  double sum = 0.0;
  for (size_t i = first_window; i < windows_.size(); ++i) sum += windows_[i].bubble_fraction();
  return sum / static_cast<double>(windows_.size() - first_window);
}

}  // namespace meridian::parallel

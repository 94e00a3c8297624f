#include "parallel/pipeline/chrome_trace.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace meridian::parallel {

namespace {

nlohmann::json metadata(const char* what, int pid, int tid, const std::string& name) {
  return {{"ph", "M"}, {"name", what}, {"pid", pid}, {"tid", tid}, {"args", {{"name", name}}}};
}

}  // namespace

void write_chrome_trace(const Timeline& timeline, const std::string& path, int world_rank,
                        const std::string& process_label) {
  nlohmann::json events = nlohmann::json::array();
  events.push_back(metadata("process_name", world_rank, 0, process_label));
  events.push_back(metadata("thread_name", world_rank, static_cast<int>(TimelineTrack::compute), "compute"));
  events.push_back(
      metadata("thread_name", world_rank, static_cast<int>(TimelineTrack::communication), "communication"));
  for (const TimelineEvent& event : timeline.events()) {
    events.push_back({{"name", event.name},
                      {"cat", category_name(event.category)},
                      {"ph", "X"},
                      {"ts", static_cast<double>(event.start_ns) / 1e3},
                      {"dur", static_cast<double>(event.duration_ns) / 1e3},
                      {"pid", world_rank},
                      {"tid", static_cast<int>(event.track)},
                      {"args", event.args}});
  }
  // The bubble of every step's schedule as a counter track, stepped at the window's start.
  for (const StepWindow& window : timeline.windows())
    events.push_back({{"name", "bubble_fraction"},
                      {"ph", "C"},
                      {"ts", static_cast<double>(window.start_ns) / 1e3},
                      {"pid", world_rank},
                      {"args", {{"bubble", window.bubble_fraction()}}}});
  const nlohmann::json trace = {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
  std::ofstream out(path);
  if (!out) MERIDIAN_FAIL("trace: cannot open '", path, "' for writing: ", std::strerror(errno));
  out << trace.dump() << '\n';
  out.flush();
  if (!out) MERIDIAN_FAIL("trace: writing '", path, "' failed: ", std::strerror(errno));
}

}  // namespace meridian::parallel

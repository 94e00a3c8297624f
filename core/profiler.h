#pragma once
// A per-op time table for finding where a step's time goes. Off by default; when off a Scope costs
// one branch. Entries are inclusive (a region nested in another counts in both).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::profiler {

struct Entry {
  std::string name;
  double total_ms = 0.0;
  int64_t calls = 0;
};

void set_enabled(bool enabled);
bool enabled();
void reset();
std::vector<Entry> entries();  // most time first
void add(std::string_view name, std::string_view phase, double ms);
// Called at the start and the end of every Scope while profiling is on. A GPU benchmark sets it to
// wait for the device, so that each scope times its kernels rather than their launches (and the
// step runs slower: use it for the breakdown, not the throughput). Null: nothing.
void set_scope_boundary_hook(void (*hook)());

class Scope {
 public:
  explicit Scope(std::string_view name, std::string_view phase = {});
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  std::string_view name_;
  std::string_view phase_;
  int64_t start_ns_ = -1;
};

}  // namespace meridian::profiler

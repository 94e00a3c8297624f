#include "core/profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>

namespace meridian::profiler {
namespace {

std::atomic<bool> g_enabled{false};
std::mutex g_mutex;
std::map<std::string, Entry, std::less<>> g_entries;
std::atomic<void (*)()> g_boundary_hook{nullptr};

void at_boundary() {
  if (void (*hook)() = g_boundary_hook.load()) hook();
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void set_enabled(bool enabled) { g_enabled = enabled; }
void set_scope_boundary_hook(void (*hook)()) { g_boundary_hook = hook; }
bool enabled() { return g_enabled; }

void reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_entries.clear();
}

std::vector<Entry> entries() {
  std::vector<Entry> out;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& [name, entry] : g_entries) out.push_back(entry);
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.total_ms > b.total_ms; });
  return out;
}

void add(std::string_view name, std::string_view phase, double ms) {
  std::string key(name);
  if (!phase.empty()) key.append(".").append(phase);
  std::lock_guard<std::mutex> lock(g_mutex);
  Entry& entry = g_entries[key];
  entry.name = key;
  entry.total_ms += ms;
  entry.calls += 1;
}

Scope::Scope(std::string_view name, std::string_view phase) : name_(name), phase_(phase) {
  if (!g_enabled) return;
  at_boundary();
  start_ns_ = now_ns();
}

Scope::~Scope() {
  if (start_ns_ < 0) return;
  at_boundary();
  add(name_, phase_, static_cast<double>(now_ns() - start_ns_) * 1e-6);
}

}  // namespace meridian::profiler

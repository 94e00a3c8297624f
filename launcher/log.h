#pragma once
// Logging for distributed programs. The console would be unreadable if every rank printed its
// progress, and a warning nobody can attribute to a rank is of little use, so:
//  - log_info:  printed to stdout by rank 0 only;
//  - log_warn / log_error: printed to stderr by whichever rank has them, as "rank R: warning: ...";
//  - with --log-dir, every rank also writes all its lines, timestamped, to DIR/rank-R.log.
// Thread-safe (the comm watchdog and signal thread log too).
#include <filesystem>
#include <optional>
#include <string>

#include "core/error.h"

namespace meridian::launcher {

enum class LogLevel : uint8_t { info, warning, error };

// Called by the Runtime: the rank for prefixes, and the directory for per-rank files (created
// when missing; throws when it cannot be written).
void configure_logging(int world_rank, const std::optional<std::filesystem::path>& log_dir);
// The per-rank file in use, if any.
std::optional<std::filesystem::path> log_file_path();

void log_message(LogLevel level, const std::string& message);

template <class... Args>
void log_info(Args&&... args) {
  log_message(LogLevel::info, detail::concat(std::forward<Args>(args)...));
}
template <class... Args>
void log_warn(Args&&... args) {
  log_message(LogLevel::warning, detail::concat(std::forward<Args>(args)...));
}
template <class... Args>
void log_error(Args&&... args) {
  log_message(LogLevel::error, detail::concat(std::forward<Args>(args)...));
}

}  // namespace meridian::launcher

#include "launcher/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>
#include <system_error>

namespace meridian::launcher {
namespace {

struct LogState {
  std::mutex mutex;
  int rank = 0;
  std::optional<std::filesystem::path> path;
  std::ofstream file;
};

LogState& state() {
  static LogState log_state;
  return log_state;
}

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "info";
}

std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[64];
  const size_t length = std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &local);
  std::snprintf(text + length, sizeof(text) - length, ".%03d", static_cast<int>(millis));
  return text;
}

}  // namespace

void configure_logging(int world_rank, const std::optional<std::filesystem::path>& log_dir) {
  LogState& log = state();
  std::lock_guard<std::mutex> lock(log.mutex);
  log.rank = world_rank;
  if (log.file.is_open()) log.file.close();
  log.path.reset();
  if (!log_dir) return;
  std::error_code error;
  std::filesystem::create_directories(*log_dir, error);  // every rank may race to create it
  const std::filesystem::path path = *log_dir / ("rank-" + std::to_string(world_rank) + ".log");
  log.file.open(path, std::ios::out | std::ios::app);
  if (!log.file)
    MERIDIAN_FAIL("rank ", world_rank, ": cannot write the log file ", path.string(),
                  error ? " (" + error.message() + ")" : std::string());
  log.path = path;
}

std::optional<std::filesystem::path> log_file_path() {
  LogState& log = state();
  std::lock_guard<std::mutex> lock(log.mutex);
  return log.path;
}

void log_message(LogLevel level, const std::string& message) {
  LogState& log = state();
  std::lock_guard<std::mutex> lock(log.mutex);
  if (level == LogLevel::info) {
    if (log.rank == 0) {
      std::fprintf(stdout, "%s\n", message.c_str());
      std::fflush(stdout);
    }
  } else {
    std::fprintf(stderr, "rank %d: %s: %s\n", log.rank, level_name(level), message.c_str());
    std::fflush(stderr);
  }
  if (log.file.is_open()) {
    log.file << timestamp() << " [" << level_name(level) << "] " << message << '\n';
    log.file.flush();  // a crash must not lose the lines that explain it
  }
}

}  // namespace meridian::launcher

#pragma once
// The parallel-layout flags every program shares, and their validation into a ParallelConfig:
//
//   --dp N --tp N --pp N   grid shape; dp is inferred from the world size when left out
//   --zero 0|1|2           ZeRO stage (optimizer state / gradient sharding over dp)
//   --bucket-mb MB         DDP gradient bucket size (default 25)
//   --comm-timeout S       seconds before a stuck collective aborts the job (default 300)
//   --stop-grace S         seconds a SIGTERM/SIGINT leaves the program to stop (default 60)
//   --log-dir DIR          also write every rank's log to DIR/rank-R.log
//   --device cpu|cuda      cuda: each rank drives the GPU of its node-local rank
//
// Validation throws UsageError, identically on every rank (it depends only on the flags and the
// world size), so a bad layout ends every rank with a message from rank 0 and no hang.
#include <chrono>
#include <cstddef>
#include <cxxopts.hpp>
#include <filesystem>
#include <optional>
#include <string_view>

#include "parallel/process_grid.h"

namespace meridian::launcher {

enum class DeviceKind : uint8_t { cpu, cuda };
std::string_view device_kind_name(DeviceKind kind);

struct ParallelConfig {
  parallel::GridShape grid;
  int zero_stage = 0;
  double bucket_mb = 25.0;
  std::chrono::milliseconds comm_timeout{std::chrono::seconds(300)};
  std::chrono::milliseconds stop_grace{std::chrono::seconds(60)};
  std::optional<std::filesystem::path> log_dir;
  DeviceKind device = DeviceKind::cpu;

  size_t bucket_bytes() const { return static_cast<size_t>(bucket_mb * 1024.0 * 1024.0); }
};

// Adds the flags above to `options` (group "Parallel layout").
void add_parallel_options(cxxopts::Options& options);
// Reads and checks them for a job of `world_size` ranks.
ParallelConfig parse_parallel_config(const cxxopts::ParseResult& parsed, int world_size);

}  // namespace meridian::launcher

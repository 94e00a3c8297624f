#include "launcher/parallel_options.h"

#include <cmath>
#include <string>

#include "launcher/usage_error.h"

namespace meridian::launcher {
namespace {

std::chrono::milliseconds positive_seconds(const cxxopts::ParseResult& parsed,
                                           const std::string& flag) {
  const double seconds = parsed[flag].as<double>();
  if (!(seconds > 0.0) || !std::isfinite(seconds))
    MERIDIAN_USAGE_ERROR("--", flag, " must be a positive number of seconds, got ", seconds);
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000.0)));
}

int positive_extent(const cxxopts::ParseResult& parsed, const std::string& flag) {
  const int value = parsed[flag].as<int>();
  if (value < 1) MERIDIAN_USAGE_ERROR("--", flag, " must be at least 1, got ", value);
  return value;
}

}  // namespace

std::string_view device_kind_name(DeviceKind kind) {
  return kind == DeviceKind::cuda ? "cuda" : "cpu";
}

void add_parallel_options(cxxopts::Options& options) {
  // clang-format off
  options.add_options("Parallel layout")
      ("dp", "data-parallel size (default: world size / (tp*pp))", cxxopts::value<int>())
      ("tp", "tensor-parallel size", cxxopts::value<int>()->default_value("1"))
      ("pp", "pipeline-parallel size", cxxopts::value<int>()->default_value("1"))
      ("zero", "ZeRO stage: 0, 1 or 2", cxxopts::value<int>()->default_value("0"))
      ("bucket-mb", "DDP gradient bucket size in MB",
       cxxopts::value<double>()->default_value("25"))
      ("comm-timeout", "seconds before a stuck collective aborts the job",
       cxxopts::value<double>()->default_value("300"))
      ("stop-grace", "seconds a SIGTERM/SIGINT leaves the program to stop before it is aborted",
       cxxopts::value<double>()->default_value("60"))
      ("log-dir", "write every rank's log to DIR/rank-R.log", cxxopts::value<std::string>())
      ("device", "cpu or cuda (one GPU per rank, by node-local rank)",
       cxxopts::value<std::string>()->default_value("cpu"));
  // clang-format on
}

ParallelConfig parse_parallel_config(const cxxopts::ParseResult& parsed, int world_size) {
  ParallelConfig config;
  config.grid.tp = positive_extent(parsed, "tp");
  config.grid.pp = positive_extent(parsed, "pp");
  const int64_t tp_pp = static_cast<int64_t>(config.grid.tp) * config.grid.pp;
  if (parsed.count("dp")) {
    config.grid.dp = positive_extent(parsed, "dp");
    if (config.grid.world_size() != world_size)
      MERIDIAN_USAGE_ERROR("--dp ", config.grid.dp, " --tp ", config.grid.tp, " --pp ",
                           config.grid.pp, " needs dp*tp*pp = ", config.grid.world_size(),
                           " ranks, but the job has ", world_size);
  } else {
    if (world_size % tp_pp != 0)
      MERIDIAN_USAGE_ERROR("--tp ", config.grid.tp, " --pp ", config.grid.pp,
                           " does not divide the job's ", world_size, " ranks (tp*pp = ", tp_pp,
                           "), so no data-parallel size fits");
    config.grid.dp = static_cast<int>(world_size / tp_pp);
  }

  config.zero_stage = parsed["zero"].as<int>();
  if (config.zero_stage < 0 || config.zero_stage > 2)
    MERIDIAN_USAGE_ERROR("--zero ", config.zero_stage, ": the ZeRO stage must be 0, 1 or 2");

  config.bucket_mb = parsed["bucket-mb"].as<double>();
  if (!(config.bucket_mb > 0.0) || !std::isfinite(config.bucket_mb))
    MERIDIAN_USAGE_ERROR("--bucket-mb must be positive, got ", config.bucket_mb);

  config.comm_timeout = positive_seconds(parsed, "comm-timeout");
  config.stop_grace = positive_seconds(parsed, "stop-grace");

  if (parsed.count("log-dir")) {
    const std::string dir = parsed["log-dir"].as<std::string>();
    if (dir.empty()) MERIDIAN_USAGE_ERROR("--log-dir needs a directory");
    config.log_dir = std::filesystem::path(dir);
  }

  const std::string device = parsed["device"].as<std::string>();
  if (device == "cpu")
    config.device = DeviceKind::cpu;
  else if (device == "cuda")
    config.device = DeviceKind::cuda;
  else
    MERIDIAN_USAGE_ERROR("--device ", device, ": expected cpu or cuda");
  return config;
}

}  // namespace meridian::launcher

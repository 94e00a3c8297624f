// The shared parallel-layout flags: defaults, inference of dp, and the messages of bad layouts.
#include <gtest/gtest.h>

#include <vector>

#include "launcher/parallel_options.h"
#include "launcher/usage_error.h"

namespace meridian::launcher {
namespace {

ParallelConfig parse(std::vector<std::string> arguments, int world_size) {
  arguments.insert(arguments.begin(), "program");
  std::vector<char*> argv;
  for (std::string& argument : arguments) argv.push_back(argument.data());
  cxxopts::Options options("program");
  add_parallel_options(options);
  const auto parsed = options.parse(static_cast<int>(argv.size()), argv.data());
  return parse_parallel_config(parsed, world_size);
}

std::string usage_error(std::vector<std::string> arguments, int world_size) {
  try {
    parse(std::move(arguments), world_size);
  } catch (const UsageError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(ParallelOptions, DefaultsPutEveryRankInDataParallel) {
  const ParallelConfig config = parse({}, 8);
  EXPECT_EQ(config.grid.dp, 8);
  EXPECT_EQ(config.grid.tp, 1);
  EXPECT_EQ(config.grid.pp, 1);
  EXPECT_EQ(config.zero_stage, 0);
  EXPECT_EQ(config.bucket_bytes(), size_t{25} << 20);
  EXPECT_EQ(config.comm_timeout, std::chrono::seconds(300));
  EXPECT_FALSE(config.log_dir.has_value());
  EXPECT_EQ(config.device, DeviceKind::cpu);
}

TEST(ParallelOptions, InfersDataParallelFromTheWorld) {
  const ParallelConfig config = parse({"--tp", "2", "--pp", "2"}, 8);
  EXPECT_EQ(config.grid.dp, 2);
  EXPECT_EQ(usage_error({"--tp", "3"}, 8),
            "--tp 3 --pp 1 does not divide the job's 8 ranks (tp*pp = 3), so no data-parallel "
            "size fits");
}

TEST(ParallelOptions, ExplicitLayoutMustMatchTheWorld) {
  EXPECT_EQ(parse({"--dp", "2", "--tp", "2", "--pp", "2"}, 8).grid.world_size(), 8);
  EXPECT_EQ(usage_error({"--dp", "2", "--tp", "2"}, 8),
            "--dp 2 --tp 2 --pp 1 needs dp*tp*pp = 4 ranks, but the job has 8");
  EXPECT_EQ(usage_error({"--tp", "0"}, 8), "--tp must be at least 1, got 0");
}

TEST(ParallelOptions, ZeroStageBucketsTimeoutsDeviceAndLogs) {
  const ParallelConfig config = parse({"--zero", "2", "--bucket-mb", "0.5", "--comm-timeout", "2.5",
                                       "--device", "cuda", "--log-dir", "/tmp/logs"},
                                      2);
  EXPECT_EQ(config.zero_stage, 2);
  EXPECT_EQ(config.bucket_bytes(), size_t{512} << 10);
  EXPECT_EQ(config.comm_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(config.device, DeviceKind::cuda);
  EXPECT_EQ(config.log_dir, std::filesystem::path("/tmp/logs"));

  EXPECT_EQ(usage_error({"--zero", "3"}, 2), "--zero 3: the ZeRO stage must be 0, 1 or 2");
  EXPECT_EQ(usage_error({"--zero", "-1"}, 2), "--zero -1: the ZeRO stage must be 0, 1 or 2");
  EXPECT_EQ(usage_error({"--bucket-mb", "0"}, 2), "--bucket-mb must be positive, got 0");
  EXPECT_EQ(usage_error({"--comm-timeout", "0"}, 2),
            "--comm-timeout must be a positive number of seconds, got 0");
  EXPECT_EQ(usage_error({"--device", "tpu"}, 2), "--device tpu: expected cpu or cuda");
}

}  // namespace
}  // namespace meridian::launcher

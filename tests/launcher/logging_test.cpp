// Logging: info on rank 0's console only, warnings from any rank with the rank, every line in the
// per-rank file.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "launcher/log.h"
#include "launcher/testing/mpi_test_environment.h"

namespace meridian::launcher {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST(Logging, ConsoleInfoOnRankZeroWarningsWithTheRankAndEveryLineInTheRankFile) {
  const int rank = meridian::testing::runtime().world_rank();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("meridian-log-test-" + std::to_string(getpid()));
  configure_logging(rank, dir);
  ASSERT_EQ(log_file_path(), dir / ("rank-" + std::to_string(rank) + ".log"));

  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  log_info("loss ", 2.5, " at step ", 7);
  log_warn("slow step");
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::string err = ::testing::internal::GetCapturedStderr();
  configure_logging(rank, std::nullopt);  // closes the file

  EXPECT_EQ(out, rank == 0 ? "loss 2.5 at step 7\n" : "");
  EXPECT_EQ(err, "rank " + std::to_string(rank) + ": warning: slow step\n");
  const std::string file = read_file(dir / ("rank-" + std::to_string(rank) + ".log"));
  EXPECT_NE(file.find("[info] loss 2.5 at step 7\n"), std::string::npos) << file;
  EXPECT_NE(file.find("[warning] slow step\n"), std::string::npos) << file;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace meridian::launcher

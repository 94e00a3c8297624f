#include "core/io/file_pattern.h"

#include <gtest/gtest.h>

#include "tests/io/io_test_util.h"

namespace meridian::io {
namespace {

using testing::TempDir;

TEST(FilePattern, WildcardMatching) {
  EXPECT_TRUE(matches_wildcard("*.bin", "train_000.bin"));
  EXPECT_TRUE(matches_wildcard("train_???.bin", "train_001.bin"));
  EXPECT_FALSE(matches_wildcard("train_???.bin", "train_0001.bin"));
  EXPECT_TRUE(matches_wildcard("*", ""));
  EXPECT_TRUE(matches_wildcard("a*b*c", "aXXbYYbZc"));
  EXPECT_FALSE(matches_wildcard("a*b*c", "aXXbYYbZ"));
  EXPECT_FALSE(matches_wildcard("*.bin", "train.bin.tmp"));
  EXPECT_TRUE(matches_wildcard("exact.txt", "exact.txt"));
  EXPECT_FALSE(matches_wildcard("exact.txt", "exact.txt2"));
}

TEST(FilePattern, ExpandsSortedAndIgnoresNonMatches) {
  TempDir dir;
  for (const char* name : {"shard_2.bin", "shard_10.bin", "shard_1.bin", "other.txt"})
    testing::write_bytes(dir / name, "x", 1);
  std::filesystem::create_directory(dir / "shard_dir.bin");  // directories never match
  const auto paths = expand_file_pattern((dir / "shard_*.bin").string(), "data file");
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(paths[0].filename(), "shard_1.bin");  // plain name order, as every rank sorts it
  EXPECT_EQ(paths[1].filename(), "shard_10.bin");
  EXPECT_EQ(paths[2].filename(), "shard_2.bin");
}

TEST(FilePattern, NoMatchIsAnErrorNamingThePattern) {
  TempDir dir;
  const std::string pattern = (dir / "nothing_*.bin").string();
  testing::expect_error([&] { expand_file_pattern(pattern, "data file"); },
                        {pattern, "no file matches"});
}

TEST(FilePattern, MissingPlainPathIsAnError) {
  TempDir dir;
  const std::string path = (dir / "missing.bin").string();
  testing::expect_error([&] { expand_file_pattern(path, "data file"); }, {path, "does not exist"});
}

TEST(FilePattern, WildcardInDirectoryIsRejected) {
  testing::expect_error([] { expand_file_pattern("/tmp/*/x.bin", "data file"); },
                        {"/tmp/*/x.bin", "only supported in the file name"});
}

}  // namespace
}  // namespace meridian::io

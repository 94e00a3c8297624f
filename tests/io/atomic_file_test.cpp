#include "core/io/atomic_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>

#include "tests/io/io_test_util.h"

namespace meridian::io {
namespace {

using testing::TempDir;

size_t count_entries(const std::filesystem::path& directory) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(directory)) ++count;
  return count;
}

TEST(AtomicFile, WritesNewFile) {
  TempDir dir;
  write_file_atomically(dir / "a.txt", "hello");
  EXPECT_EQ(testing::read_all(dir / "a.txt"), "hello");
  EXPECT_EQ(count_entries(dir.path()), 1u);  // no temporary left behind
}

TEST(AtomicFile, ReplacesExistingFile) {
  TempDir dir;
  write_file_atomically(dir / "a.txt", "old contents, longer than the new ones");
  write_file_atomically(dir / "a.txt", [](FileSink& sink) {
    sink.write("new", 3);
    sink.write(" bytes", 6);
  });
  EXPECT_EQ(testing::read_all(dir / "a.txt"), "new bytes");
  EXPECT_EQ(count_entries(dir.path()), 1u);
}

TEST(AtomicFile, FailureMidWriteLeavesPreviousFileIntact) {
  TempDir dir;
  write_file_atomically(dir / "model.bin", "the good checkpoint");
  EXPECT_THROW(write_file_atomically(dir / "model.bin",
                                     [](FileSink& sink) {
                                       sink.write("half of a new chec", 18);
                                       throw std::runtime_error("disk on fire");
                                     }),
               std::runtime_error);
  EXPECT_EQ(testing::read_all(dir / "model.bin"), "the good checkpoint");
  EXPECT_EQ(count_entries(dir.path()), 1u) << "the temporary file was not removed";
}

TEST(AtomicFile, FailureWithNoPreviousFileCreatesNothing) {
  TempDir dir;
  EXPECT_THROW(write_file_atomically(dir / "fresh.bin",
                                     [](FileSink& sink) {
                                       sink.write("x", 1);
                                       throw std::runtime_error("interrupted");
                                     }),
               std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(dir / "fresh.bin"));
  EXPECT_EQ(count_entries(dir.path()), 0u);
}

TEST(AtomicFile, MissingDirectoryIsAnErrorNamingIt) {
  TempDir dir;
  testing::expect_error([&] { write_file_atomically(dir / "no_such_dir" / "a.txt", "x"); },
                        {"no_such_dir", "does not exist"});
}

TEST(AtomicFile, WritesArraysOfValues) {
  TempDir dir;
  const std::vector<int32_t> values = {1, -2, 300000};
  write_file_atomically(dir / "ints.bin", [&](FileSink& sink) {
    sink.write_array(std::span<const int32_t>(values));
  });
  const std::string bytes = testing::read_all(dir / "ints.bin");
  ASSERT_EQ(bytes.size(), values.size() * sizeof(int32_t));
  std::vector<int32_t> back(values.size());
  std::memcpy(back.data(), bytes.data(), bytes.size());
  EXPECT_EQ(back, values);
}

TEST(AtomicFile, FsyncDirectoryAcceptsExistingAndRejectsMissing) {
  TempDir dir;
  EXPECT_NO_THROW(fsync_directory(dir.path()));
  EXPECT_THROW(fsync_directory(dir / "missing"), Error);
}

}  // namespace
}  // namespace meridian::io

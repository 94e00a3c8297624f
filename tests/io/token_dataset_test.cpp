#include "core/io/token_dataset.h"

#include <gtest/gtest.h>

#include <array>
#include <numeric>

#include "tests/io/io_test_util.h"

namespace meridian::io {
namespace {

using testing::expect_error;
using testing::TempDir;

std::vector<uint16_t> counting_tokens(size_t count, uint16_t first = 0) {
  std::vector<uint16_t> tokens(count);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

TEST(TokenDataset, TextIsByteLevel) {
  const TokenDataset data = TokenDataset::from_text("Hi\n\xE2\x82\xAC");  // "Hi\n€"
  ASSERT_EQ(data.size(), 6);
  EXPECT_EQ(data[0], 'H');
  EXPECT_EQ(data[2], '\n');
  EXPECT_EQ(data[3], 0xE2);  // bytes above 127 are tokens 128..255, never negative
  EXPECT_EQ(data.max_token(), 0xE2);
}

TEST(TokenDataset, EmptyTextIsAnError) {
  expect_error([] { TokenDataset::from_text("", "my text"); }, {"my text", "no tokens"});
}

TEST(TokenDataset, ReadsTextFile) {
  TempDir dir;
  testing::write_bytes(dir / "input.txt", "abc", 3);
  const TokenDataset data = TokenDataset::open((dir / "input.txt").string());
  EXPECT_EQ(data.size(), 3);
  EXPECT_EQ(data[2], 'c');
  EXPECT_NE(data.source().find("input.txt"), std::string::npos);
}

TEST(TokenDataset, EmptyTextFileIsAnErrorNamingIt) {
  TempDir dir;
  testing::write_bytes(dir / "empty.txt", "", 0);
  expect_error([&] { TokenDataset::open((dir / "empty.txt").string()); },
               {"empty.txt", "no tokens"});
}

TEST(TokenDataset, TextGlobConcatenatesInOrder) {
  TempDir dir;
  testing::write_bytes(dir / "b.txt", "world", 5);
  testing::write_bytes(dir / "a.txt", "hello ", 6);
  const TokenDataset data = TokenDataset::open((dir / "*.txt").string());
  std::string text(data.tokens().begin(), data.tokens().end());
  EXPECT_EQ(text, "hello world");
  EXPECT_NE(data.source().find("2 files"), std::string::npos);
}

TEST(TokenDataset, ShardRoundTrip) {
  TempDir dir;
  const auto tokens =
      counting_tokens(1000, 65000);  // wraps past 65535: every uint16 value is valid
  write_llmc_shard(dir / "shard.bin", tokens);
  EXPECT_EQ(std::filesystem::file_size(dir / "shard.bin"), 1024u + 2000u);
  const TokenDataset data = TokenDataset::open((dir / "shard.bin").string());
  ASSERT_EQ(data.size(), 1000);
  EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), data.tokens().begin()));
  EXPECT_EQ(data.max_token(), 65535);
}

TEST(TokenDataset, ShardGlobConcatenatesSortedShards) {
  TempDir dir;
  write_llmc_shard(dir / "train_001.bin", counting_tokens(10, 10));
  write_llmc_shard(dir / "train_000.bin", counting_tokens(10, 0));
  write_llmc_shard(dir / "val_000.bin", counting_tokens(5, 500));
  const TokenDataset data = TokenDataset::open((dir / "train_*.bin").string());
  ASSERT_EQ(data.size(), 20);
  for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(data[i], i);
  EXPECT_NE(data.source().find("2 files"), std::string::npos);
}

TEST(TokenDataset, MissingFileIsAnErrorNamingIt) {
  TempDir dir;
  const std::string path = (dir / "missing.bin").string();
  expect_error([&] { TokenDataset::open(path); }, {path, "does not exist"});
  const std::string text_path = (dir / "missing.txt").string();
  expect_error([&] { TokenDataset::open(text_path); }, {text_path, "does not exist"});
}

TEST(TokenDataset, GlobWithNoMatchIsAnErrorNamingThePattern) {
  TempDir dir;
  const std::string pattern = (dir / "fineweb_*.bin").string();
  expect_error([&] { TokenDataset::open(pattern); }, {pattern, "no file matches"});
}

TEST(TokenDataset, TruncatedShardIsAnErrorWithBothCounts) {
  TempDir dir;
  write_llmc_shard(dir / "x.bin", counting_tokens(1000));
  std::filesystem::resize_file(dir / "x.bin", 1024 + 998 * 2);
  expect_error([&] { read_llmc_shard(dir / "x.bin"); },
               {"x.bin", "truncated", "header says 1000 tokens", "file holds 998"});
}

TEST(TokenDataset, OversizedShardIsAnError) {
  TempDir dir;
  write_llmc_shard(dir / "x.bin", counting_tokens(100));
  const std::array<uint16_t, 3> extra = {1, 2, 3};
  testing::append_bytes(dir / "x.bin", extra.data(), sizeof(extra));
  expect_error([&] { read_llmc_shard(dir / "x.bin"); },
               {"x.bin", "oversized", "header says 100 tokens", "file holds 103"});
}

TEST(TokenDataset, OddTrailingByteIsAnError) {
  TempDir dir;
  write_llmc_shard(dir / "x.bin", counting_tokens(10));
  testing::append_bytes(dir / "x.bin", "z", 1);
  expect_error([&] { read_llmc_shard(dir / "x.bin"); }, {"x.bin", "oversized"});
}

TEST(TokenDataset, ShardSmallerThanHeaderIsAnError) {
  TempDir dir;
  testing::write_bytes(dir / "tiny.bin", "abcd", 4);
  expect_error([&] { read_llmc_shard(dir / "tiny.bin"); },
               {"tiny.bin", "4 bytes", "1024-byte header"});
}

TEST(TokenDataset, WrongMagicIsAnError) {
  TempDir dir;
  write_llmc_shard(dir / "x.bin", counting_tokens(10));
  testing::patch_word(dir / "x.bin", 0, 1234);
  expect_error([&] { TokenDataset::open((dir / "x.bin").string()); },
               {"data file '", "x.bin", "header magic 1234 is not 20240520"});
}

TEST(TokenDataset, WrongVersionIsAnError) {
  TempDir dir;
  write_llmc_shard(dir / "x.bin", counting_tokens(10));
  testing::patch_word(dir / "x.bin", 1, 2);
  expect_error([&] { read_llmc_shard(dir / "x.bin"); }, {"x.bin", "version 2 is not 1", "uint32"});
  testing::patch_word(dir / "x.bin", 1, 7);
  expect_error([&] { read_llmc_shard(dir / "x.bin"); }, {"x.bin", "version 7 is not 1"});
}

TEST(TokenDataset, NegativeCountIsAnError) {
  TempDir dir;
  write_llmc_shard(dir / "x.bin", counting_tokens(10));
  testing::patch_word(dir / "x.bin", 2, -5);
  expect_error([&] { read_llmc_shard(dir / "x.bin"); }, {"x.bin", "negative"});
}

TEST(TokenDataset, EmptyShardsAreAnError) {
  TempDir dir;
  write_llmc_shard(dir / "empty.bin", {});
  EXPECT_TRUE(read_llmc_shard(dir / "empty.bin").empty());  // one empty shard is well-formed...
  expect_error([&] { TokenDataset::open((dir / "empty.bin").string()); },
               {"empty.bin", "no tokens"});  // ...but there is nothing to train on
}

TEST(TokenDataset, DirectoryIsNotAFile) {
  TempDir dir;
  std::filesystem::create_directory(dir / "d.bin");
  expect_error([&] { read_llmc_shard(dir / "d.bin"); }, {"d.bin", "is a directory"});
}

TEST(TokenDataset, VocabularyCheckNamesTheBadToken) {
  const TokenDataset data({1, 2, 300, 4}, "test tokens");
  EXPECT_NO_THROW(data.check_fits_vocabulary(301));
  expect_error([&] { data.check_fits_vocabulary(256); },
               {"test tokens", "token 300 at position 2", "vocabulary of 256"});
}

TEST(TokenDataset, CopiesShareTokens) {
  const TokenDataset data({1, 2, 3}, "shared");
  const TokenDataset copy = data;
  EXPECT_EQ(copy.tokens().data(), data.tokens().data());
}

}  // namespace
}  // namespace meridian::io

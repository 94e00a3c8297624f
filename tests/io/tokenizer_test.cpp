#include "core/io/tokenizer.h"

#include <gtest/gtest.h>

#include <array>

#include "tests/io/io_test_util.h"

namespace meridian::io {
namespace {

using testing::expect_error;
using testing::TempDir;

// An llm.c tokenizer file with the given pieces.
void write_tokenizer(const std::filesystem::path& path, uint32_t version,
                     const std::vector<std::string>& pieces, uint32_t eot = 0,
                     uint32_t magic = kLlmcTokenizerMagic) {
  std::array<uint32_t, 256> header{};
  header[0] = magic;
  header[1] = version;
  header[2] = static_cast<uint32_t>(pieces.size());
  header[3] = eot;
  std::string body;
  for (const std::string& piece : pieces) {
    body += static_cast<char>(static_cast<uint8_t>(piece.size()));
    body += piece;
  }
  testing::write_bytes(path, header.data(), sizeof(header));
  testing::append_bytes(path, body.data(), body.size());
}

TEST(Tokenizer, ByteLevelByDefault) {
  const Tokenizer tokenizer;
  EXPECT_EQ(tokenizer.vocab_size(), 256);
  EXPECT_FALSE(tokenizer.eot_token().has_value());
  EXPECT_EQ(tokenizer.decode(int64_t{'A'}), "A");
  EXPECT_EQ(tokenizer.decode(int64_t{0}), std::string(1, '\0'));
  EXPECT_EQ(tokenizer.decode(int64_t{0xE2}), "\xE2");
  const std::vector<int32_t> tokens = {'H', 'i', '\n'};
  EXPECT_EQ(tokenizer.decode(tokens), "Hi\n");
}

TEST(Tokenizer, OutOfRangeTokenIsAnError) {
  const Tokenizer tokenizer;
  expect_error([&] { tokenizer.decode(int64_t{256}); }, {"token 256", "[0, 256)"});
  expect_error([&] { tokenizer.decode(int64_t{-1}); }, {"token -1"});
}

TEST(Tokenizer, ReadsLlmcVersion2) {
  TempDir dir;
  write_tokenizer(dir / "tok.bin", 2, {"!", "hello", " world", "<|endoftext|>"}, 3);
  const Tokenizer tokenizer = Tokenizer::load(dir / "tok.bin");
  EXPECT_EQ(tokenizer.vocab_size(), 4);
  EXPECT_EQ(tokenizer.eot_token(), 3);
  const std::vector<int32_t> tokens = {1, 2, 0};
  EXPECT_EQ(tokenizer.decode(tokens), "hello world!");
  expect_error([&] { tokenizer.decode(int64_t{4}); }, {"tok.bin", "token 4", "[0, 4)"});
}

TEST(Tokenizer, Version1HasNoEotUnlessGpt2Sized) {
  TempDir dir;
  write_tokenizer(dir / "tok.bin", 1, {"a", "b"});
  EXPECT_FALSE(Tokenizer::load(dir / "tok.bin").eot_token().has_value());
  std::vector<std::string> gpt2_sized(50257, "x");
  write_tokenizer(dir / "gpt2.bin", 1, gpt2_sized);
  EXPECT_EQ(Tokenizer::load(dir / "gpt2.bin").eot_token(), 50256);
}

TEST(Tokenizer, BadFilesAreErrorsNamingTheFile) {
  TempDir dir;
  expect_error([&] { Tokenizer::load(dir / "missing.bin"); }, {"missing.bin", "does not exist"});

  write_tokenizer(dir / "magic.bin", 2, {"a"}, 0, 12345);
  expect_error([&] { Tokenizer::load(dir / "magic.bin"); },
               {"tokenizer file '", "magic.bin", "magic 12345 is not 20240328"});

  write_tokenizer(dir / "version.bin", 3, {"a"});
  expect_error([&] { Tokenizer::load(dir / "version.bin"); }, {"version.bin", "version 3"});

  write_tokenizer(dir / "eot.bin", 2, {"a", "b"}, 2);
  expect_error([&] { Tokenizer::load(dir / "eot.bin"); }, {"eot.bin", "end-of-text token 2"});

  write_tokenizer(dir / "short.bin", 2, {"abc", "defgh"});
  std::filesystem::resize_file(dir / "short.bin", 1024 + 4 + 3);
  expect_error([&] { Tokenizer::load(dir / "short.bin"); }, {"short.bin", "truncated", "token 1"});

  write_tokenizer(dir / "long.bin", 2, {"abc"});
  testing::append_bytes(dir / "long.bin", "zz", 2);
  expect_error([&] { Tokenizer::load(dir / "long.bin"); }, {"long.bin", "oversized"});

  write_tokenizer(dir / "zero.bin", 2, {"abc", "", "d"});
  expect_error([&] { Tokenizer::load(dir / "zero.bin"); }, {"zero.bin", "token 1 has length 0"});

  testing::write_bytes(dir / "tiny.bin", "ab", 2);
  expect_error([&] { Tokenizer::load(dir / "tiny.bin"); }, {"tiny.bin", "1024-byte header"});
}

}  // namespace
}  // namespace meridian::io

#include "core/io/token_dataset.h"

#include <algorithm>
#include <array>
#include <limits>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/io/binary_file.h"
#include "core/io/file_pattern.h"

namespace meridian::io {

namespace {

constexpr int64_t kShardHeaderBytes = kLlmcHeaderWords * sizeof(int32_t);

// "text file 'a.txt'" or "text files 'data/*.txt' (3 files)".
std::string describe_files(std::string_view kind, const std::string& path_or_pattern,
                           size_t file_count) {
  if (!has_wildcard(path_or_pattern)) return detail::concat(kind, " '", path_or_pattern, "'");
  return detail::concat(kind, "s '", path_or_pattern, "' (", file_count,
                        file_count == 1 ? " file)" : " files)");
}

}  // namespace

TokenDataset::TokenDataset(std::vector<uint16_t> tokens, std::string source)
    : source_(std::move(source)) {
  if (tokens.empty()) MERIDIAN_FAIL(source_, ": holds no tokens");
  max_token_ = *std::max_element(tokens.begin(), tokens.end());
  tokens_ = std::make_shared<const std::vector<uint16_t>>(std::move(tokens));
}

TokenDataset TokenDataset::from_text(std::string_view text, std::string source) {
  std::vector<uint16_t> tokens(text.size());
  // Through unsigned char: a plain char may be signed, and byte 0xE2 must be token 226, not -30.
  std::transform(text.begin(), text.end(), tokens.begin(),
                 [](char byte) { return static_cast<uint16_t>(static_cast<unsigned char>(byte)); });
  return TokenDataset(std::move(tokens), std::move(source));
}

TokenDataset TokenDataset::from_text_files(const std::string& path_or_pattern) {
  const auto paths = expand_file_pattern(path_or_pattern, "text file");
  std::string text;
  for (const auto& path : paths) {
    BinaryFileReader reader(path, "text file");
    const size_t offset = text.size();
    text.resize(offset + reader.size());
    reader.read_bytes(text.data() + offset, reader.size(), "text");
  }
  return from_text(text, describe_files("text file", path_or_pattern, paths.size()));
}

std::vector<uint16_t> read_llmc_shard(const std::filesystem::path& path) {
  BinaryFileReader reader(path, "data file");
  if (reader.size() < static_cast<uint64_t>(kShardHeaderBytes))
    reader.fail("file is ", reader.size(), " bytes, smaller than the ", kShardHeaderBytes,
                "-byte header of an llm.c token shard");
  std::array<int32_t, kLlmcHeaderWords> header{};
  reader.read_array(header.data(), header.size(), "header");
  if (header[0] != kLlmcShardMagic)
    reader.fail("header magic ", header[0], " is not ", kLlmcShardMagic, " (llm.c token shard)");
  if (header[1] != kLlmcShardVersion)
    reader.fail("header version ", header[1], " is not ", kLlmcShardVersion,
                header[1] == 2 ? " (version 2 holds uint32 tokens, which are not supported)"
                               : " (uint16 tokens)");
  const int64_t count = header[2];
  if (count < 0) reader.fail("header token count ", count, " is negative");

  const int64_t expected_bytes = kShardHeaderBytes + count * static_cast<int64_t>(sizeof(uint16_t));
  const int64_t actual_bytes = static_cast<int64_t>(reader.size());
  if (actual_bytes != expected_bytes) {
    const int64_t tokens_held =
        (actual_bytes - kShardHeaderBytes) / static_cast<int64_t>(sizeof(uint16_t));
    reader.fail(actual_bytes < expected_bytes ? "truncated" : "oversized", ": header says ", count,
                " tokens, file holds ", tokens_held, " (", actual_bytes, " bytes; expected ",
                expected_bytes, ")");
  }
  std::vector<uint16_t> tokens(static_cast<size_t>(count));
  reader.read_array(tokens.data(), tokens.size(), "tokens");
  return tokens;
}

TokenDataset TokenDataset::from_llmc_shards(const std::string& path_or_pattern) {
  const auto paths = expand_file_pattern(path_or_pattern, "data file");
  std::vector<uint16_t> tokens;
  for (const auto& path : paths) {
    std::vector<uint16_t> shard = read_llmc_shard(path);
    tokens.insert(tokens.end(), shard.begin(), shard.end());
  }
  return TokenDataset(std::move(tokens),
                      describe_files("llm.c shard", path_or_pattern, paths.size()));
}

TokenDataset TokenDataset::open(const std::string& path_or_pattern) {
  if (std::filesystem::path(path_or_pattern).extension() == ".bin")
    return from_llmc_shards(path_or_pattern);
  return from_text_files(path_or_pattern);
}

void TokenDataset::check_fits_vocabulary(int64_t vocab_size) const {
  if (max_token_ < vocab_size) return;
  const auto& tokens = *tokens_;
  const auto bad = std::find_if(tokens.begin(), tokens.end(),
                                [&](uint16_t token) { return token >= vocab_size; });
  MERIDIAN_FAIL(source_, ": token ", *bad, " at position ", bad - tokens.begin(),
                " is outside the model's vocabulary of ", vocab_size, " (largest token is ",
                max_token_, ")");
}

void write_llmc_shard(const std::filesystem::path& path, std::span<const uint16_t> tokens) {
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    MERIDIAN_FAIL("data file '", path.string(), "': ", tokens.size(),
                  " tokens do not fit the int32 count of an llm.c shard header");
  std::array<int32_t, kLlmcHeaderWords> header{};
  header[0] = kLlmcShardMagic;
  header[1] = kLlmcShardVersion;
  header[2] = static_cast<int32_t>(tokens.size());
  write_file_atomically(path, [&](FileSink& sink) {
    sink.write_array(std::span<const int32_t>(header));
    sink.write_array(tokens);
  });
}

}  // namespace meridian::io

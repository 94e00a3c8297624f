#pragma once
// A stream of tokens to train on, and where it came from (for error messages and logs).
// Two sources, as ARCHITECTURE.md's "Data" decision says:
//   - raw text: byte-level tokens, each byte 0..255 is one token;
//   - llm.c token shards: a 256 x int32 header (magic 20240520, version 1, token count) followed by
//     that many uint16 tokens. A glob pattern reads several shards in sorted order, concatenated.
// Copies are cheap: the tokens are shared and never change after loading.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::io {

inline constexpr int32_t kLlmcShardMagic = 20240520;
inline constexpr int32_t kLlmcShardVersion = 1;  // uint16 tokens (GPT-2 vocabulary)

class TokenDataset {
 public:
  // `source` describes the data in messages ("text file 'input.txt'"). Empty data is an error.
  TokenDataset(std::vector<uint16_t> tokens, std::string source);

  static TokenDataset from_text(std::string_view text, std::string source = "in-memory text");
  // One text file, or a glob pattern whose matches are concatenated in sorted order.
  static TokenDataset from_text_files(const std::string& path_or_pattern);
  // One llm.c shard, or a glob pattern ("data/fineweb_train_*.bin") of shards.
  static TokenDataset from_llmc_shards(const std::string& path_or_pattern);
  // A name ending in ".bin" is read as llm.c shards, anything else as raw text.
  static TokenDataset open(const std::string& path_or_pattern);

  std::span<const uint16_t> tokens() const { return *tokens_; }
  int64_t size() const { return static_cast<int64_t>(tokens_->size()); }
  uint16_t operator[](int64_t index) const { return (*tokens_)[static_cast<size_t>(index)]; }
  const std::string& source() const { return source_; }
  uint16_t max_token() const { return max_token_; }
  // Throws unless every token is below `vocab_size`, naming the source and the first bad token.
  void check_fits_vocabulary(int64_t vocab_size) const;

 private:
  std::shared_ptr<const std::vector<uint16_t>> tokens_;
  std::string source_;
  uint16_t max_token_ = 0;
};

// Writes one llm.c shard (version 1) atomically.
void write_llmc_shard(const std::filesystem::path& path, std::span<const uint16_t> tokens);

// Reads one llm.c shard, validating header and size; errors name the file.
std::vector<uint16_t> read_llmc_shard(const std::filesystem::path& path);

}  // namespace meridian::io

#pragma once
// Turning sampled tokens back into text. Byte-level by default (token b is the byte b), matching
// TokenDataset::from_text; or llm.c's gpt2_tokenizer.bin for models trained on GPT-2 tokens.
// Decoding only: training reads pre-tokenized shards, so nothing here needs to encode.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace meridian::io {

inline constexpr uint32_t kLlmcTokenizerMagic = 20240328;

class Tokenizer {
 public:
  // Byte-level: 256 tokens, no end-of-text token.
  Tokenizer();
  static Tokenizer bytes() { return Tokenizer(); }

  // Reads llm.c's tokenizer file (gpt2_tokenizer.bin): 256 x uint32 header (magic 20240328, version
  // 1 or 2, vocab size, and for version 2 the end-of-text token), then per token a uint8 length and
  // that many bytes. Version 1 files carry no end-of-text token; like llm.c we take GPT-2's 50256
  // when V = 50257.
  static Tokenizer load(const std::filesystem::path& path);

  int64_t vocab_size() const { return static_cast<int64_t>(pieces_.size()); }
  std::optional<int32_t> eot_token() const { return eot_token_; }
  const std::string& source() const { return source_; }

  // The bytes of one token; a token outside [0, vocab_size) is an error (e.g. a sample drawn from
  // the padded part of a model's vocabulary).
  const std::string& decode(int64_t token) const;
  std::string decode(std::span<const int32_t> tokens) const;

 private:
  std::vector<std::string> pieces_;
  std::optional<int32_t> eot_token_;
  std::string source_;
};

}  // namespace meridian::io

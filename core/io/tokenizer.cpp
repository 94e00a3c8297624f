#include "core/io/tokenizer.h"

#include <array>

#include "core/error.h"
#include "core/io/binary_file.h"

namespace meridian::io {

namespace {

constexpr int64_t kHeaderBytes = kLlmcHeaderWords * sizeof(uint32_t);
constexpr uint32_t kGpt2VocabSize = 50257;
constexpr int32_t kGpt2EotToken = 50256;

}  // namespace

Tokenizer::Tokenizer() : pieces_(256), source_("byte-level tokenizer") {
  for (int byte = 0; byte < 256; ++byte)
    pieces_[static_cast<size_t>(byte)] = std::string(1, static_cast<char>(byte));
}

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  BinaryFileReader reader(path, "tokenizer file");
  if (reader.size() < static_cast<uint64_t>(kHeaderBytes))
    reader.fail("file is ", reader.size(), " bytes, smaller than the ", kHeaderBytes,
                "-byte header of an llm.c tokenizer");
  std::array<uint32_t, kLlmcHeaderWords> header{};
  reader.read_array(header.data(), header.size(), "header");
  if (header[0] != kLlmcTokenizerMagic)
    reader.fail("header magic ", header[0], " is not ", kLlmcTokenizerMagic, " (llm.c tokenizer)");
  const uint32_t version = header[1];
  if (version != 1 && version != 2) reader.fail("header version ", version, " is not 1 or 2");
  const uint32_t vocab_size = header[2];
  if (vocab_size == 0) reader.fail("header vocab size is 0");
  // Each token takes at least two bytes (length and one byte), which bounds a sane vocab size
  // before we allocate for it.
  if (vocab_size > (reader.size() - kHeaderBytes) / 2)
    reader.fail("truncated: header says ", vocab_size, " tokens, file holds ", reader.size(),
                " bytes");

  Tokenizer tokenizer;
  tokenizer.source_ = "tokenizer file '" + path.string() + "'";
  if (version == 2) {
    if (header[3] >= vocab_size)
      reader.fail("end-of-text token ", header[3], " is outside the vocabulary of ", vocab_size);
    tokenizer.eot_token_ = static_cast<int32_t>(header[3]);
  } else if (vocab_size == kGpt2VocabSize) {
    tokenizer.eot_token_ = kGpt2EotToken;
  }

  tokenizer.pieces_.assign(vocab_size, std::string());
  uint64_t consumed = kHeaderBytes;
  for (uint32_t token = 0; token < vocab_size; ++token) {
    uint8_t length = 0;
    if (consumed + 1 > reader.size())
      reader.fail("truncated: file ends before token ", token, " of ", vocab_size);
    reader.read_array(&length, 1, "token length");
    if (length == 0) reader.fail("token ", token, " has length 0");
    if (consumed + 1 + length > reader.size())
      reader.fail("truncated: token ", token, " of ", vocab_size, " needs ", int{length},
                  " bytes at offset ", consumed + 1, ", file holds ", reader.size(), " bytes");
    std::string& piece = tokenizer.pieces_[token];
    piece.resize(length);
    reader.read_bytes(piece.data(), length, "token bytes");
    consumed += 1u + length;
  }
  if (consumed != reader.size())
    reader.fail("oversized: ", vocab_size, " tokens end at byte ", consumed, ", file holds ",
                reader.size(), " bytes");
  return tokenizer;
}

const std::string& Tokenizer::decode(int64_t token) const {
  if (token < 0 || token >= vocab_size())
    MERIDIAN_FAIL(source_, ": token ", token, " is outside the vocabulary [0, ", vocab_size(), ")");
  return pieces_[static_cast<size_t>(token)];
}

std::string Tokenizer::decode(std::span<const int32_t> tokens) const {
  std::string text;
  for (int32_t token : tokens) text += decode(token);
  return text;
}

}  // namespace meridian::io

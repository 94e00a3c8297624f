#include "core/io/llmc_checkpoint.h"

#include <gtest/gtest.h>

#include <array>

#include "core/dtype.h"
#include "tests/io/io_test_util.h"

namespace meridian::io {
namespace {

using testing::expect_error;
using testing::TempDir;

Gpt2CheckpointHeader tiny_header() {
  Gpt2CheckpointHeader header;
  header.max_seq_len = 4;
  header.vocab_size = 10;
  header.num_layers = 2;
  header.num_heads = 2;
  header.channels = 8;
  header.padded_vocab_size = 16;
  return header;
}

// Distinct, exactly representable values (also in bf16): tensor k holds k + (i mod 64) / 4 - 8.
std::vector<NamedTensor> tiny_tensors(const Gpt2CheckpointHeader& header) {
  std::vector<NamedTensor> tensors;
  float k = 0;
  for (const TensorSpec& spec : llmc_gpt2_tensor_specs(header)) {
    std::vector<float> values(static_cast<size_t>(shape_numel(spec.shape)));
    for (size_t i = 0; i < values.size(); ++i)
      values[i] = k + static_cast<float>(i % 64) / 4.0f - 8.0f;
    tensors.push_back({spec.name, spec.shape, std::move(values)});
    k += 1;
  }
  return tensors;
}

int64_t file_bytes(const Gpt2CheckpointHeader& header, int64_t element_bytes) {
  return 1024 + llmc_gpt2_parameter_count(header) * element_bytes;
}

TEST(LlmcCheckpoint, TensorSpecsFollowLlmcOrderAndShapes) {
  const auto specs = llmc_gpt2_tensor_specs(tiny_header());
  const std::vector<std::string> names = {"wte",      "wpe",      "ln1w", "ln1b", "qkvw", "qkvb",
                                          "attprojw", "attprojb", "ln2w", "ln2b", "fcw",  "fcb",
                                          "fcprojw",  "fcprojb",  "lnfw", "lnfb"};
  ASSERT_EQ(specs.size(), names.size());
  for (size_t i = 0; i < specs.size(); ++i) EXPECT_EQ(specs[i].name, names[i]);
  EXPECT_EQ(specs[0].shape, (Shape{16, 8}));  // padded vocab
  EXPECT_EQ(specs[1].shape, (Shape{4, 8}));
  EXPECT_EQ(specs[4].shape, (Shape{2, 24, 8}));   // qkvw (L, 3C, C)
  EXPECT_EQ(specs[10].shape, (Shape{2, 32, 8}));  // fcw (L, 4C, C)
  EXPECT_EQ(specs[12].shape, (Shape{2, 8, 32}));  // fcprojw (L, C, 4C)
  EXPECT_EQ(specs[15].shape, (Shape{8}));
}

TEST(LlmcCheckpoint, Gpt2SmallHasLlmcsParameterCount) {
  Gpt2CheckpointHeader gpt2;
  gpt2.max_seq_len = 1024;
  gpt2.vocab_size = 50257;
  gpt2.num_layers = 12;
  gpt2.num_heads = 12;
  gpt2.channels = 768;
  gpt2.padded_vocab_size = 50304;
  EXPECT_EQ(llmc_gpt2_parameter_count(gpt2), 124475904);  // what llm.c prints for gpt2_124M.bin
}

TEST(LlmcCheckpoint, RoundTrip) {
  TempDir dir;
  const Gpt2CheckpointHeader header = tiny_header();
  const auto tensors = tiny_tensors(header);
  write_llmc_gpt2(dir / "model.bin", header, tensors);
  EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(dir / "model.bin")),
            file_bytes(header, 4));

  const Gpt2Checkpoint back = read_llmc_gpt2(dir / "model.bin");
  EXPECT_EQ(back.header.version, 3);
  EXPECT_EQ(back.header.max_seq_len, 4);
  EXPECT_EQ(back.header.vocab_size, 10);
  EXPECT_EQ(back.header.num_layers, 2);
  EXPECT_EQ(back.header.num_heads, 2);
  EXPECT_EQ(back.header.channels, 8);
  EXPECT_EQ(back.header.padded_vocab_size, 16);
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back.tensors[i].name, tensors[i].name);
    EXPECT_EQ(back.tensors[i].shape, tensors[i].shape);
    EXPECT_EQ(back.tensors[i].values, tensors[i].values) << tensors[i].name;
  }
  const Gpt2CheckpointHeader header_only = read_llmc_gpt2_header(dir / "model.bin");
  EXPECT_EQ(header_only.padded_vocab_size, 16);
}

TEST(LlmcCheckpoint, ReadsBf16Version5) {
  TempDir dir;
  const Gpt2CheckpointHeader header = tiny_header();
  const auto tensors = tiny_tensors(header);
  std::array<int32_t, 256> words{};
  words[0] = 20240326;
  words[1] = 5;
  words[2] = header.max_seq_len;
  words[3] = header.vocab_size;
  words[4] = header.num_layers;
  words[5] = header.num_heads;
  words[6] = header.channels;
  words[7] = header.padded_vocab_size;
  std::vector<uint16_t> bits;
  for (const NamedTensor& tensor : tensors)
    for (float value : tensor.values) bits.push_back(bf16(value).bits);
  testing::write_bytes(dir / "model_bf16.bin", words.data(), sizeof(words));
  testing::append_bytes(dir / "model_bf16.bin", bits.data(), bits.size() * sizeof(uint16_t));

  const Gpt2Checkpoint back = read_llmc_gpt2(dir / "model_bf16.bin");
  EXPECT_EQ(back.header.version, 5);
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i)
    EXPECT_EQ(back.tensors[i].values, tensors[i].values) << tensors[i].name;
}

TEST(LlmcCheckpoint, OldVersion3WithoutPaddingReadsVocabAsPadded) {
  TempDir dir;
  Gpt2CheckpointHeader header = tiny_header();
  header.padded_vocab_size = header.vocab_size;
  write_llmc_gpt2(dir / "old.bin", header, tiny_tensors(header));
  testing::patch_word(dir / "old.bin", 7, 0);
  const Gpt2Checkpoint back = read_llmc_gpt2(dir / "old.bin");
  EXPECT_EQ(back.header.padded_vocab_size, 10);
  EXPECT_EQ(back.tensors[0].shape, (Shape{10, 8}));
}

TEST(LlmcCheckpoint, TruncatedIsAnErrorWithExpectedAndActualBytes) {
  TempDir dir;
  const Gpt2CheckpointHeader header = tiny_header();
  write_llmc_gpt2(dir / "model.bin", header, tiny_tensors(header));
  const int64_t expected = file_bytes(header, 4);
  std::filesystem::resize_file(dir / "model.bin", static_cast<uintmax_t>(expected - 6));
  const std::string expected_text = std::to_string(expected);
  const std::string actual_text = std::to_string(expected - 6);
  expect_error([&] { read_llmc_gpt2(dir / "model.bin"); },
               {"checkpoint '", "model.bin", "truncated", expected_text, actual_text});
  expect_error([&] { read_llmc_gpt2_header(dir / "model.bin"); }, {"truncated"});
}

TEST(LlmcCheckpoint, OversizedIsAnError) {
  TempDir dir;
  const Gpt2CheckpointHeader header = tiny_header();
  write_llmc_gpt2(dir / "model.bin", header, tiny_tensors(header));
  testing::append_bytes(dir / "model.bin", "junk", 4);
  expect_error([&] { read_llmc_gpt2(dir / "model.bin"); },
               {"model.bin", "oversized", std::to_string(file_bytes(header, 4) + 4)});
}

TEST(LlmcCheckpoint, SmallerThanHeaderIsAnError) {
  TempDir dir;
  testing::write_bytes(dir / "stub.bin", "abc", 3);
  expect_error([&] { read_llmc_gpt2(dir / "stub.bin"); },
               {"stub.bin", "3 bytes", "1024-byte header"});
}

TEST(LlmcCheckpoint, MissingFileIsAnError) {
  TempDir dir;
  expect_error([&] { read_llmc_gpt2(dir / "gpt2_124M.bin"); }, {"gpt2_124M.bin", "does not exist"});
}

TEST(LlmcCheckpoint, WrongMagicIsAnError) {
  TempDir dir;
  const Gpt2CheckpointHeader header = tiny_header();
  write_llmc_gpt2(dir / "model.bin", header, tiny_tensors(header));
  testing::patch_word(dir / "model.bin", 0, 20240520);  // a token shard's magic
  expect_error([&] { read_llmc_gpt2(dir / "model.bin"); },
               {"model.bin", "magic 20240520 is not 20240326"});
}

TEST(LlmcCheckpoint, WrongVersionIsAnError) {
  TempDir dir;
  const Gpt2CheckpointHeader header = tiny_header();
  write_llmc_gpt2(dir / "model.bin", header, tiny_tensors(header));
  testing::patch_word(dir / "model.bin", 1, 4);
  expect_error([&] { read_llmc_gpt2(dir / "model.bin"); }, {"model.bin", "version 4"});
}

TEST(LlmcCheckpoint, BadSizesAreErrors) {
  TempDir dir;
  const Gpt2CheckpointHeader header = tiny_header();
  write_llmc_gpt2(dir / "model.bin", header, tiny_tensors(header));
  testing::patch_word(dir / "model.bin", 4, 0);
  expect_error([&] { read_llmc_gpt2(dir / "model.bin"); }, {"model.bin", "num_layers is 0"});
  testing::patch_word(dir / "model.bin", 4, 2);
  testing::patch_word(dir / "model.bin", 7, 9);
  expect_error([&] { read_llmc_gpt2(dir / "model.bin"); },
               {"padded_vocab_size 9", "vocab_size 10"});
  testing::patch_word(dir / "model.bin", 7, 16);
  testing::patch_word(dir / "model.bin", 5, 3);
  expect_error([&] { read_llmc_gpt2(dir / "model.bin"); }, {"not divisible by num_heads 3"});
  testing::patch_word(dir / "model.bin", 5, 2);
  testing::patch_word(dir / "model.bin", 6, 1 << 30);  // a huge header must not overflow sizes
  testing::patch_word(dir / "model.bin", 4, 1 << 30);
  expect_error([&] { read_llmc_gpt2(dir / "model.bin"); }, {"model.bin", "impossibly large"});
}

TEST(LlmcCheckpoint, WriteRejectsTensorsThatDoNotMatchTheHeader) {
  TempDir dir;
  const Gpt2CheckpointHeader header = tiny_header();
  auto tensors = tiny_tensors(header);
  tensors.pop_back();
  expect_error([&] { write_llmc_gpt2(dir / "m.bin", header, tensors); }, {"15 tensors", "16"});
  tensors = tiny_tensors(header);
  std::swap(tensors[2], tensors[3]);
  expect_error([&] { write_llmc_gpt2(dir / "m.bin", header, tensors); },
               {"'ln1b'", "expected 'ln1w'"});
  tensors = tiny_tensors(header);
  tensors[4].values.pop_back();
  expect_error([&] { write_llmc_gpt2(dir / "m.bin", header, tensors); }, {"'qkvw'", "values"});
  Gpt2CheckpointHeader bad = header;
  bad.padded_vocab_size = 0;
  expect_error([&] { write_llmc_gpt2(dir / "m.bin", bad, tiny_tensors(header)); },
               {"padded_vocab_size 0"});
  EXPECT_FALSE(std::filesystem::exists(dir / "m.bin"));
}

}  // namespace
}  // namespace meridian::io

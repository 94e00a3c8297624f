#pragma once
// llm.c's GPT-2 checkpoint (gpt2_124M.bin and friends): a 256 x int32 header, then every
// parameter tensor back to back in a fixed order. Reading it lets Meridian start from the same
// weights as llm.c and compare against it; writing it lets llm.c's tools read our models.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/shape.h"

namespace meridian::io {

inline constexpr int32_t kLlmcGpt2Magic = 20240326;
inline constexpr int32_t kLlmcGpt2VersionF32 = 3;   // float32 tensors
inline constexpr int32_t kLlmcGpt2VersionBf16 = 5;  // bfloat16 tensors (read only)

struct Gpt2CheckpointHeader {
  int32_t version = kLlmcGpt2VersionF32;
  int32_t max_seq_len = 0;  // maxT
  int32_t vocab_size = 0;   // V: real tokens
  int32_t num_layers = 0;   // L
  int32_t num_heads = 0;
  int32_t channels = 0;           // C
  int32_t padded_vocab_size = 0;  // Vp ≥ V: wte rows, padded for faster matmuls
};

struct TensorSpec {
  std::string name;
  Shape shape;
};

struct NamedTensor {
  std::string name;
  Shape shape;
  std::vector<float> values;  // row-major, shape_numel(shape) of them
};

struct Gpt2Checkpoint {
  Gpt2CheckpointHeader header;
  std::vector<NamedTensor> tensors;  // in llmc_gpt2_tensor_specs order
};

// The 16 tensors of a checkpoint, in file order: wte (Vp, C), wpe (maxT, C), ln1w (L, C),
// ln1b (L, C), qkvw (L, 3C, C), qkvb (L, 3C), attprojw (L, C, C), attprojb (L, C), ln2w (L, C),
// ln2b (L, C), fcw (L, 4C, C), fcb (L, 4C), fcprojw (L, C, 4C), fcprojb (L, C), lnfw (C), lnfb (C).
std::vector<TensorSpec> llmc_gpt2_tensor_specs(const Gpt2CheckpointHeader& header);
int64_t llmc_gpt2_parameter_count(const Gpt2CheckpointHeader& header);

// Reads and validates the header alone (magic, version, sizes, and the file's exact size).
// Version 3 files from old llm.c have 0 for the padded vocabulary: it is taken to be V.
Gpt2CheckpointHeader read_llmc_gpt2_header(const std::filesystem::path& path);

// Reads the whole checkpoint; version 5 (bf16) tensors are converted to float.
Gpt2Checkpoint read_llmc_gpt2(const std::filesystem::path& path);

// Writes a version 3 (float32) checkpoint atomically. `tensors` must match
// llmc_gpt2_tensor_specs(header) in order, names and shapes; header.version is ignored.
void write_llmc_gpt2(const std::filesystem::path& path, const Gpt2CheckpointHeader& header,
                     const std::vector<NamedTensor>& tensors);

}  // namespace meridian::io

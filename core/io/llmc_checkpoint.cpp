#include "core/io/llmc_checkpoint.h"

#include <array>
#include <span>

#include "core/dtype.h"
#include "core/error.h"
#include "core/io/atomic_file.h"
#include "core/io/binary_file.h"

namespace meridian::io {

namespace {

constexpr int64_t kHeaderBytes = kLlmcHeaderWords * sizeof(int32_t);

std::string describe(const std::filesystem::path& path) {
  return detail::concat("checkpoint '", path.string(), "'");
}

// The checks shared by reading and writing; `context` names the file.
void check_header(const Gpt2CheckpointHeader& header, const std::string& context) {
  const auto require_positive = [&](int32_t value, const char* what) {
    if (value <= 0) MERIDIAN_FAIL(context, ": ", what, " is ", value, ", must be positive");
  };
  require_positive(header.max_seq_len, "max_seq_len");
  require_positive(header.vocab_size, "vocab_size");
  require_positive(header.num_layers, "num_layers");
  require_positive(header.num_heads, "num_heads");
  require_positive(header.channels, "channels");
  if (header.channels % header.num_heads != 0)
    MERIDIAN_FAIL(context, ": channels ", header.channels, " is not divisible by num_heads ",
                  header.num_heads);
  if (header.padded_vocab_size < header.vocab_size)
    MERIDIAN_FAIL(context, ": padded_vocab_size ", header.padded_vocab_size,
                  " is smaller than vocab_size ", header.vocab_size);
}

int64_t element_bytes(int32_t version) {
  return version == kLlmcGpt2VersionBf16 ? static_cast<int64_t>(sizeof(bf16))
                                         : static_cast<int64_t>(sizeof(float));
}

Gpt2CheckpointHeader read_header(BinaryFileReader& reader) {
  if (reader.size() < static_cast<uint64_t>(kHeaderBytes))
    reader.fail("file is ", reader.size(), " bytes, smaller than the ", kHeaderBytes,
                "-byte header of an llm.c GPT-2 checkpoint");
  std::array<int32_t, kLlmcHeaderWords> words{};
  reader.read_array(words.data(), words.size(), "header");
  if (words[0] != kLlmcGpt2Magic)
    reader.fail("header magic ", words[0], " is not ", kLlmcGpt2Magic, " (llm.c GPT-2 checkpoint)");
  if (words[1] != kLlmcGpt2VersionF32 && words[1] != kLlmcGpt2VersionBf16)
    reader.fail("header version ", words[1], " is not ", kLlmcGpt2VersionF32, " (float32) or ",
                kLlmcGpt2VersionBf16, " (bf16)");
  Gpt2CheckpointHeader header;
  header.version = words[1];
  header.max_seq_len = words[2];
  header.vocab_size = words[3];
  header.num_layers = words[4];
  header.num_heads = words[5];
  header.channels = words[6];
  // llm.c before vocabulary padding wrote version 3 files with 0 here.
  header.padded_vocab_size =
      header.version == kLlmcGpt2VersionF32 && words[7] == 0 ? words[3] : words[7];
  check_header(header, describe(reader.path()));

  int64_t expected_bytes = 0;
  try {
    expected_bytes =
        kHeaderBytes + checked_multiply(llmc_gpt2_parameter_count(header),
                                        element_bytes(header.version), "checkpoint size");
  } catch (const Error& overflow) {
    reader.fail("header sizes are impossibly large (", overflow.what(), ")");
  }
  const auto actual_bytes = static_cast<int64_t>(reader.size());
  if (actual_bytes != expected_bytes)
    reader.fail(actual_bytes < expected_bytes ? "truncated" : "oversized",
                ": header (L=", header.num_layers, ", C=", header.channels,
                ", Vp=", header.padded_vocab_size, ", maxT=", header.max_seq_len, ", version ",
                header.version, ") needs ", expected_bytes, " bytes, file holds ", actual_bytes);
  return header;
}

int64_t checked_numel(const Shape& shape) {
  int64_t numel = 1;
  for (int64_t extent : shape) numel = checked_multiply(numel, extent, "checkpoint tensor size");
  return numel;
}

}  // namespace

std::vector<TensorSpec> llmc_gpt2_tensor_specs(const Gpt2CheckpointHeader& header) {
  const int64_t L = header.num_layers, C = header.channels;
  const int64_t Vp = header.padded_vocab_size, maxT = header.max_seq_len;
  return {
      {"wte", {Vp, C}},
      {"wpe", {maxT, C}},
      {"ln1w", {L, C}},
      {"ln1b", {L, C}},
      {"qkvw", {L, 3 * C, C}},
      {"qkvb", {L, 3 * C}},
      {"attprojw", {L, C, C}},
      {"attprojb", {L, C}},
      {"ln2w", {L, C}},
      {"ln2b", {L, C}},
      {"fcw", {L, 4 * C, C}},
      {"fcb", {L, 4 * C}},
      {"fcprojw", {L, C, 4 * C}},
      {"fcprojb", {L, C}},
      {"lnfw", {C}},
      {"lnfb", {C}},
  };
}

int64_t llmc_gpt2_parameter_count(const Gpt2CheckpointHeader& header) {
  int64_t total = 0;
  for (const TensorSpec& spec : llmc_gpt2_tensor_specs(header)) {
    if (__builtin_add_overflow(total, checked_numel(spec.shape), &total))
      MERIDIAN_FAIL("checkpoint parameter count overflows a 64-bit size");
  }
  return total;
}

Gpt2CheckpointHeader read_llmc_gpt2_header(const std::filesystem::path& path) {
  BinaryFileReader reader(path, "checkpoint");
  return read_header(reader);
}

Gpt2Checkpoint read_llmc_gpt2(const std::filesystem::path& path) {
  BinaryFileReader reader(path, "checkpoint");
  Gpt2Checkpoint checkpoint;
  checkpoint.header = read_header(reader);
  std::vector<bf16> staging;  // version 5 only
  for (TensorSpec& spec : llmc_gpt2_tensor_specs(checkpoint.header)) {
    const auto numel = static_cast<size_t>(shape_numel(spec.shape));
    std::vector<float> values(numel);
    if (checkpoint.header.version == kLlmcGpt2VersionBf16) {
      staging.resize(numel);
      reader.read_array(staging.data(), numel, spec.name);
      convert_elements(values.data(), DType::f32, staging.data(), DType::bf16,
                       static_cast<int64_t>(numel));
    } else {
      reader.read_array(values.data(), numel, spec.name);
    }
    checkpoint.tensors.push_back({std::move(spec.name), std::move(spec.shape), std::move(values)});
  }
  return checkpoint;
}

void write_llmc_gpt2(const std::filesystem::path& path, const Gpt2CheckpointHeader& header,
                     const std::vector<NamedTensor>& tensors) {
  const std::string context = describe(path);
  check_header(header, context);
  const std::vector<TensorSpec> specs = llmc_gpt2_tensor_specs(header);
  if (tensors.size() != specs.size())
    MERIDIAN_FAIL(context, ": ", tensors.size(), " tensors given, a GPT-2 checkpoint has ",
                  specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const NamedTensor& tensor = tensors[i];
    if (tensor.name != specs[i].name || tensor.shape != specs[i].shape)
      MERIDIAN_FAIL(context, ": tensor ", i, " is '", tensor.name, "' ", shape_str(tensor.shape),
                    ", expected '", specs[i].name, "' ", shape_str(specs[i].shape));
    if (static_cast<int64_t>(tensor.values.size()) != checked_numel(tensor.shape))
      MERIDIAN_FAIL(context, ": tensor '", tensor.name, "' ", shape_str(tensor.shape), " has ",
                    tensor.values.size(), " values");
  }
  std::array<int32_t, kLlmcHeaderWords> words{};
  words[0] = kLlmcGpt2Magic;
  words[1] = kLlmcGpt2VersionF32;
  words[2] = header.max_seq_len;
  words[3] = header.vocab_size;
  words[4] = header.num_layers;
  words[5] = header.num_heads;
  words[6] = header.channels;
  words[7] = header.padded_vocab_size;
  write_file_atomically(path, [&](FileSink& sink) {
    sink.write_array(std::span<const int32_t>(words));
    for (const NamedTensor& tensor : tensors)
      sink.write_array(std::span<const float>(tensor.values));
  });
}

}  // namespace meridian::io

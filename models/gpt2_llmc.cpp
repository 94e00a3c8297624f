#include "models/gpt2_llmc.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace meridian::models {

namespace {

// llm.c tensor → the model's parameter; "{}" stands for the layer index of stacked tensors.
struct Mapping {
  const char* llmc;
  const char* parameter;
};
constexpr Mapping kMappings[] = {
    {"wte", "wte.weight"},
    {"wpe", "wpe.weight"},
    {"ln1w", "h.{}.ln_1.weight"},
    {"ln1b", "h.{}.ln_1.bias"},
    {"qkvw", "h.{}.attn.c_attn.weight"},
    {"qkvb", "h.{}.attn.c_attn.bias"},
    {"attprojw", "h.{}.attn.c_proj.weight"},
    {"attprojb", "h.{}.attn.c_proj.bias"},
    {"ln2w", "h.{}.ln_2.weight"},
    {"ln2b", "h.{}.ln_2.bias"},
    {"fcw", "h.{}.mlp.c_fc.weight"},
    {"fcb", "h.{}.mlp.c_fc.bias"},
    {"fcprojw", "h.{}.mlp.c_proj.weight"},
    {"fcprojb", "h.{}.mlp.c_proj.bias"},
    {"lnfw", "ln_f.weight"},
    {"lnfb", "ln_f.bias"},
};

std::string layer_name(const char* pattern, int64_t layer) {
  std::string name = pattern;
  const size_t at = name.find("{}");
  if (at != std::string::npos) name.replace(at, 2, std::to_string(layer));
  return name;
}

bool stacked(const char* pattern) { return std::strstr(pattern, "{}") != nullptr; }

const Mapping& mapping_for(const std::string& llmc_name) {
  for (const auto& m : kMappings)
    if (llmc_name == m.llmc) return m;
  MERIDIAN_FAIL("llm.c checkpoint: unexpected tensor '", llmc_name, "'");
}

std::map<std::string, Tensor> parameters_by_name(const Gpt2& model) {
  std::map<std::string, Tensor> out;
  for (const auto& p : model.named_parameters()) out.emplace(p.name, p.tensor);
  return out;
}

}  // namespace

io::Gpt2CheckpointHeader llmc_header(const Gpt2Config& config) {
  io::Gpt2CheckpointHeader header;
  header.version = io::kLlmcGpt2VersionF32;
  header.max_seq_len = static_cast<int32_t>(config.max_seq_len);
  header.vocab_size = static_cast<int32_t>(config.vocab_size);
  header.num_layers = static_cast<int32_t>(config.num_layers);
  header.num_heads = static_cast<int32_t>(config.num_heads);
  header.channels = static_cast<int32_t>(config.channels);
  header.padded_vocab_size = static_cast<int32_t>(config.padded_vocab_size);
  return header;
}

void load_llmc_weights(Gpt2& model, const std::filesystem::path& path) {
  const io::Gpt2Checkpoint checkpoint = io::read_llmc_gpt2(path);
  const io::Gpt2CheckpointHeader expected = llmc_header(model.config());
  const io::Gpt2CheckpointHeader& got = checkpoint.header;
  if (got.max_seq_len != expected.max_seq_len || got.vocab_size != expected.vocab_size ||
      got.num_layers != expected.num_layers || got.num_heads != expected.num_heads ||
      got.channels != expected.channels || got.padded_vocab_size != expected.padded_vocab_size)
    MERIDIAN_FAIL("checkpoint '", path.string(), "' holds a different model than the one built (",
                  model.config().to_string(), ")");
  auto params = parameters_by_name(model);
  const int64_t layers = model.config().num_layers;
  for (const io::NamedTensor& tensor : checkpoint.tensors) {
    const Mapping& m = mapping_for(tensor.name);
    const int64_t pieces = stacked(m.parameter) ? layers : 1;
    const int64_t per_piece = static_cast<int64_t>(tensor.values.size()) / pieces;
    for (int64_t layer = 0; layer < pieces; ++layer) {
      auto found = params.find(layer_name(m.parameter, layer));
      if (found == params.end()) continue;  // held by another pipeline stage
      Tensor& param = found->second;
      MERIDIAN_CHECK(param.numel() == per_piece, "checkpoint tensor ", tensor.name, " does not fit ", param.name());
      std::copy_n(tensor.values.begin() + layer * per_piece, per_piece, param.data<float>());
    }
  }
}

void save_llmc_weights(const Gpt2& model, const std::filesystem::path& path) {
  const Gpt2Placement& placement = model.placement();
  if (!placement.embedding || !placement.head || model.num_blocks() != model.config().num_layers)
    MERIDIAN_FAIL("save '", path.string(), "': this rank holds only part of the model (a pipeline stage)");
  const io::Gpt2CheckpointHeader header = llmc_header(model.config());
  auto params = parameters_by_name(model);
  std::vector<io::NamedTensor> tensors;
  for (const io::TensorSpec& spec : io::llmc_gpt2_tensor_specs(header)) {
    const Mapping& m = mapping_for(spec.name);
    io::NamedTensor out{spec.name, spec.shape, std::vector<float>(static_cast<size_t>(shape_numel(spec.shape)))};
    const int64_t pieces = stacked(m.parameter) ? model.config().num_layers : 1;
    const int64_t per_piece = static_cast<int64_t>(out.values.size()) / pieces;
    for (int64_t layer = 0; layer < pieces; ++layer) {
      const Tensor& param = params.at(layer_name(m.parameter, layer));
      MERIDIAN_CHECK(param.numel() == per_piece, "parameter ", param.name(), " does not fit llm.c tensor ", spec.name);
      std::copy_n(param.data<float>(), per_piece, out.values.begin() + layer * per_piece);
    }
    tensors.push_back(std::move(out));
  }
  io::write_llmc_gpt2(path, header, tensors);
}

}  // namespace meridian::models

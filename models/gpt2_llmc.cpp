#include "models/gpt2_llmc.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string_view>

#include "parallel/tensor_parallel/shard_gather.h"

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

std::map<std::string, nn::NamedParameter> parameters_by_name(const Gpt2& model) {
  std::map<std::string, nn::NamedParameter> out;
  for (const auto& p : model.named_parameters()) out.emplace(p.name, p);
  return out;
}

// Fills `param` (the whole logical tensor or a tensor-parallel piece of it) from the logical tensor
// `source` of `source_numel` elements. Logical elements past the source's end are zero: the padded
// vocabulary rows that tensor parallelism adds beyond the file's (see vocab_padding.h).
void load_piece(const nn::NamedParameter& param, const float* source, int64_t source_numel) {
  const ShardSpec* shard = param.shard ? &*param.shard : nullptr;
  const ShardRuns runs = shard_runs(param.tensor.shape(), shard, param.name);
  float* out = param.tensor.data<float>();
  for (size_t k = 0; k < runs.starts.size(); ++k) {
    const int64_t start = runs.starts[k];
    const int64_t available = std::clamp<int64_t>(source_numel - start, 0, runs.length);
    float* dst = out + static_cast<int64_t>(k) * runs.length;
    std::copy_n(source + std::min(start, source_numel), available, dst);
    std::fill(dst + available, dst + runs.length, 0.0f);
  }
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
  // A tensor-parallel model may pad its vocabulary further than the file (so that tp divides it):
  // the rows beyond the file's are padding and load as zeros.
  if (got.max_seq_len != expected.max_seq_len || got.vocab_size != expected.vocab_size ||
      got.num_layers != expected.num_layers || got.num_heads != expected.num_heads ||
      got.channels != expected.channels ||
      (got.padded_vocab_size != expected.padded_vocab_size &&
       !(model.tensor_parallel().enabled() && got.padded_vocab_size < expected.padded_vocab_size)))
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
      const nn::NamedParameter& param = found->second;
      const int64_t logical = logical_numel(param.tensor.shape(), param.shard ? &*param.shard : nullptr);
      MERIDIAN_CHECK(logical == per_piece || (m.parameter == std::string_view("wte.weight") && logical > per_piece),
                     "checkpoint tensor ", tensor.name, " does not fit ", param.name);
      load_piece(param, tensor.values.data() + layer * per_piece, per_piece);
    }
  }
}

void save_llmc_weights(const Gpt2& model, const std::filesystem::path& path) {
  const Gpt2Placement& placement = model.placement();
  if (!placement.embedding || !placement.head || model.num_blocks() != model.config().num_layers)
    MERIDIAN_FAIL("save '", path.string(), "': this rank holds only part of the model (a pipeline stage)");
  const io::Gpt2CheckpointHeader header = llmc_header(model.config());
  auto params = parameters_by_name(model);
  const parallel::TensorParallelContext& tensor_parallel = model.tensor_parallel();
  std::vector<io::NamedTensor> tensors;
  for (const io::TensorSpec& spec : io::llmc_gpt2_tensor_specs(header)) {
    const Mapping& m = mapping_for(spec.name);
    io::NamedTensor out{spec.name, spec.shape, std::vector<float>(static_cast<size_t>(shape_numel(spec.shape)))};
    const int64_t pieces = stacked(m.parameter) ? model.config().num_layers : 1;
    const int64_t per_piece = static_cast<int64_t>(out.values.size()) / pieces;
    for (int64_t layer = 0; layer < pieces; ++layer) {
      const nn::NamedParameter& param = params.at(layer_name(m.parameter, layer));
      // With tp > 1 every rank of the group takes part in gathering each logical tensor.
      // The values come to the host (from a model on a GPU too).
      const Tensor logical = tensor_parallel.enabled() ? parallel::gather_logical_tensor(param, *tensor_parallel.group)
                                                       : param.tensor.to(Device::cpu());
      MERIDIAN_CHECK(logical.numel() == per_piece, "parameter ", param.name, " does not fit llm.c tensor ", spec.name);
      std::copy_n(logical.data<float>(), per_piece, out.values.begin() + layer * per_piece);
    }
    tensors.push_back(std::move(out));
  }
  if (tensor_parallel.rank() == 0) io::write_llmc_gpt2(path, header, tensors);
}

}  // namespace meridian::models

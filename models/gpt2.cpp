#include "models/gpt2.h"

#include <cmath>
#include <sstream>

#include "core/functions/functions.h"
#include "parallel/tensor_parallel/mappings.h"
#include "parallel/tensor_parallel/parallel_block.h"
#include "parallel/tensor_parallel/vocab_parallel_cross_entropy.h"
#include "parallel/tensor_parallel/vocab_parallel_embedding.h"

namespace meridian::models {

namespace {
constexpr float kInitStd = 0.02f;

struct Preset {
  const char* name;
  Gpt2Config config;
};

const std::vector<Preset>& presets() {
  static const std::vector<Preset> kPresets = {
      {"gpt2-124m", {1024, 50257, 50304, 12, 12, 768}},
      {"gpt2-350m", {1024, 50257, 50304, 24, 16, 1024}},
      {"gpt2-774m", {1024, 50257, 50304, 36, 20, 1280}},
      {"gpt2-1558m", {1024, 50257, 50304, 48, 25, 1600}},
      // A byte-level model small enough to learn visibly in minutes on two cores.
      {"gpt-mini", {256, 256, 256, 6, 6, 192}},
  };
  return kPresets;
}
}  // namespace

Gpt2Config Gpt2Config::preset(std::string_view name) {
  for (const auto& p : presets())
    if (name == p.name) return p.config;
  std::ostringstream names;
  for (const auto& p : presets()) names << (names.tellp() > 0 ? ", " : "") << p.name;
  MERIDIAN_FAIL("unknown model '", name, "' (expected one of ", names.str(), ")");
}

std::vector<std::string> Gpt2Config::preset_names() {
  std::vector<std::string> out;
  for (const auto& p : presets()) out.emplace_back(p.name);
  return out;
}

int64_t Gpt2Config::padded(int64_t vocab) { return (vocab + 127) / 128 * 128; }

void Gpt2Config::validate() const {
  auto positive = [](const char* what, int64_t value) {
    if (value <= 0) MERIDIAN_FAIL("model: ", what, " must be positive, got ", value);
  };
  positive("layers", num_layers);
  positive("heads", num_heads);
  positive("channels", channels);
  positive("vocab", vocab_size);
  positive("max-seq-len", max_seq_len);
  if (channels % num_heads != 0)
    MERIDIAN_FAIL("model: heads (", num_heads, ") must divide channels (", channels, ")");
  if (padded_vocab_size < vocab_size)
    MERIDIAN_FAIL("model: padded vocabulary ", padded_vocab_size, " is smaller than the vocabulary ", vocab_size);
  if (vocab_size > 65536)
    MERIDIAN_FAIL("model: vocab ", vocab_size, " exceeds 65536 (tokens are stored as uint16)");
}

int64_t Gpt2Config::num_parameters() const {
  const int64_t C = channels, L = num_layers;
  const int64_t per_layer = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C);
  return padded_vocab_size * C + max_seq_len * C + L * per_layer + 2 * C;
}

double Gpt2Config::flops_per_token(int64_t seq_len) const {
  return 6.0 * static_cast<double>(num_parameters()) +
         6.0 * static_cast<double>(num_layers * channels * seq_len);
}

std::string Gpt2Config::to_string() const {
  std::ostringstream os;
  os << "layers " << num_layers << ", heads " << num_heads << ", channels " << channels << ", vocab "
     << vocab_size << " (padded " << padded_vocab_size << "), max-seq-len " << max_seq_len << ", "
     << num_parameters() << " parameters";
  return os.str();
}

Gpt2::Gpt2(const Gpt2Config& config, const Gpt2Placement& placement, parallel::TensorParallelContext tensor_parallel)
    : config_(config), placement_(placement), tensor_parallel_(std::move(tensor_parallel)) {
  config_.validate();
  if (placement_.num_blocks < 0) placement_.num_blocks = config_.num_layers - placement_.first_block;
  if (placement_.first_block < 0 || placement_.num_blocks < 0 ||
      placement_.first_block + placement_.num_blocks > config_.num_layers)
    MERIDIAN_FAIL("gpt2: blocks [", placement_.first_block, ", ", placement_.first_block + placement_.num_blocks,
                  ") are outside the model's ", config_.num_layers, " layers");
  const int64_t C = config_.channels;
  const float projection_std = kInitStd / std::sqrt(2.0f * static_cast<float>(config_.num_layers));
  if (tensor_parallel_.enabled()) {
    build_tensor_parallel(kInitStd, projection_std);
    assign_parameter_names();
    return;
  }
  if (placement_.embedding || placement_.head)
    wte_ = register_module("wte", std::make_shared<nn::Embedding>(config_.padded_vocab_size, C, kInitStd,
                                                                   config_.vocab_size));
  if (placement_.embedding)
    wpe_ = register_module("wpe", std::make_shared<nn::Embedding>(config_.max_seq_len, C, kInitStd));
  for (int64_t i = 0; i < placement_.num_blocks; ++i) {
    const int64_t layer = placement_.first_block + i;
    blocks_.push_back(register_module("h." + std::to_string(layer),
                                      std::make_shared<nn::Block>(C, config_.num_heads, kInitStd, projection_std)));
  }
  if (placement_.head) ln_f_ = register_module("ln_f", std::make_shared<nn::LayerNorm>(C));
  assign_parameter_names();
}

void Gpt2::require_whole(const char* what) const {
  if (!placement_.embedding || !placement_.head || num_blocks() != config_.num_layers)
    MERIDIAN_FAIL("gpt2: ", what, " needs the whole model; this rank holds blocks [", placement_.first_block, ", ",
                  placement_.first_block + num_blocks(), ")", placement_.embedding ? " and the embedding" : "",
                  placement_.head ? " and the head" : "");
}

void Gpt2::set_compute_dtype(DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    MERIDIAN_FAIL("gpt2: compute dtype ", dtype_name(dtype), " is not supported (f32 or bf16)");
  compute_dtype_ = dtype;
}

Tensor Gpt2::embed(const Tensor& tokens) const {
  if (!placement_.embedding) MERIDIAN_FAIL("gpt2: embed() on a stage without the embedding");
  if (tokens.ndim() != 2) MERIDIAN_FAIL("gpt2: tokens must be (batch, seq), got shape ", shape_str(tokens.shape()));
  const int64_t T = tokens.dim(1);
  if (T > config_.max_seq_len)
    MERIDIAN_FAIL("gpt2: sequence length ", T, " exceeds the model's max-seq-len ", config_.max_seq_len);
  if (tensor_parallel_.enabled()) return embed_tensor_parallel(tokens);
  Tensor positions = Tensor::empty({T}, DType::i32);
  for (int64_t t = 0; t < T; ++t) positions.data<int32_t>()[t] = static_cast<int32_t>(t);
  positions = positions.to(tokens.device());  // the same tensor on the cpu
  return fn::cast(fn::add(wte_->forward(tokens), wpe_->forward(positions)), compute_dtype_);
}

Tensor Gpt2::run_blocks(const Tensor& hidden, bool recompute) const {
  Tensor x = hidden;
  for (const auto& block : blocks_) x = block->forward(x, recompute);
  for (const auto& block : parallel_blocks_) x = block->forward(x, recompute);
  return x;
}

Tensor Gpt2::logits(const Tensor& hidden) const {
  if (!placement_.head) MERIDIAN_FAIL("gpt2: logits() on a stage without the head");
  if (tensor_parallel_.enabled())
    return parallel::gather_from_tensor_parallel_region(vocab_parallel_logits(hidden), tensor_parallel_.group);
  return fn::linear(ln_f_->forward(hidden), wte_->weight());  // tied output head
}

Tensor Gpt2::head_loss(const Tensor& hidden, const Tensor& targets) const {
  if (tensor_parallel_.enabled())
    return parallel::vocab_parallel_cross_entropy(vocab_parallel_logits(hidden), targets, config_.vocab_size,
                                                  tensor_parallel_);
  return fn::cross_entropy(logits(hidden), targets, config_.vocab_size);
}

const Tensor& Gpt2::tied_embedding() const { return parallel_wte_ ? parallel_wte_->weight() : wte_->weight(); }

Tensor Gpt2::forward(const Tensor& tokens, bool recompute) const {
  require_whole("forward()");
  return logits(run_blocks(embed(tokens), recompute));
}

Tensor Gpt2::loss(const Tensor& tokens, const Tensor& targets, bool recompute) const {
  require_whole("loss()");
  return head_loss(run_blocks(embed(tokens), recompute), targets);
}

}  // namespace meridian::models

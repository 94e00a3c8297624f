#include "models/gpt2_sample.h"

#include <algorithm>
#include <cmath>

#include "core/autograd/grad_mode.h"
#include "core/random.h"

namespace meridian::models {

std::vector<int32_t> sample(const Gpt2& model, std::vector<int32_t> prompt, const SampleOptions& options) {
  const Gpt2Config& config = model.config();
  if (prompt.empty()) MERIDIAN_FAIL("sample: the prompt must hold at least one token");
  const int64_t context = options.context > 0 ? std::min(options.context, config.max_seq_len) : config.max_seq_len;
  const uint64_t key = random::stream_key(options.seed, "sample");
  NoGradGuard no_grad;
  const Device device = model.named_parameters().front().tensor.device();
  std::vector<int32_t> generated;
  std::vector<double> probabilities(static_cast<size_t>(config.vocab_size));
  for (int64_t i = 0; i < options.num_tokens; ++i) {
    const int64_t length = std::min<int64_t>(static_cast<int64_t>(prompt.size()), context);
    Tensor tokens = Tensor::empty({1, length}, DType::i32);
    std::copy(prompt.end() - length, prompt.end(), tokens.data<int32_t>());
    // On the model's device (a GPU model samples there); bf16 logits under mixed precision.
    const Tensor logits = model.forward(tokens.to(device)).to(DType::f32).to(Device::cpu());
    const float* last = logits.data<float>() + (length - 1) * config.padded_vocab_size;
    const float max_logit = *std::max_element(last, last + config.vocab_size);
    double total = 0.0;
    for (int64_t j = 0; j < config.vocab_size; ++j) {
      probabilities[static_cast<size_t>(j)] = std::exp((last[j] - max_logit) / options.temperature);
      total += probabilities[static_cast<size_t>(j)];
    }
    const double draw = static_cast<double>(random::uniform(key, static_cast<uint64_t>(i))) * total;
    double cumulative = 0.0;
    int32_t choice = static_cast<int32_t>(config.vocab_size - 1);
    for (int64_t j = 0; j < config.vocab_size; ++j) {
      cumulative += probabilities[static_cast<size_t>(j)];
      if (draw < cumulative) {
        choice = static_cast<int32_t>(j);
        break;
      }
    }
    prompt.push_back(choice);
    generated.push_back(choice);
  }
  return generated;
}

}  // namespace meridian::models

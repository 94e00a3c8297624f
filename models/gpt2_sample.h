#pragma once
#include <cstdint>
#include <vector>

#include "models/gpt2.h"

namespace meridian::models {

struct SampleOptions {
  int64_t num_tokens = 0;
  float temperature = 1.0f;
  uint64_t seed = 0;
  int64_t context = 0;  // tokens of history the model sees (0: max_seq_len)
};

// Autoregressive sampling from the softmax over the real (unpadded) vocabulary. Deterministic for a
// seed: draw i uses the counter-based stream (seed, "sample") at index i. Returns only new tokens.
std::vector<int32_t> sample(const Gpt2& model, std::vector<int32_t> prompt, const SampleOptions& options);

}  // namespace meridian::models

#pragma once
// What the parity tests of every parallel layout share: a tiny GPT-2, a synthetic token stream, the
// parameters (or gradients) of a model by name, an elementwise closeness check, and the training
// step of the single-process reference and of a data-parallel replica.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/functions/functions.h"
#include "core/io/data_loader.h"
#include "core/io/token_dataset.h"
#include "core/optim/optimizer.h"
#include "models/gpt2.h"
#include "parallel/data_parallel/data_parallel.h"

namespace meridian::parallel::testing {

// Vocabulary 61 (a size no tp divides), 16 channels; the caller picks the rest.
inline models::Gpt2Config tiny_gpt2(int64_t layers, int64_t heads, int64_t padded_vocab) {
  models::Gpt2Config c;
  c.max_seq_len = 16;
  c.vocab_size = 61;
  c.padded_vocab_size = padded_vocab;
  c.num_layers = layers;
  c.num_heads = heads;
  c.channels = 16;
  return c;
}

// 6000 tokens below 61 in a fixed, irregular pattern.
inline io::TokenDataset synthetic_tokens() {
  std::vector<uint16_t> t(6000);
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<uint16_t>((i * 7 + (i / 13) * 3 + i % 5) % 61);
  return io::TokenDataset(std::move(t), "synthetic tokens");
}

// Every parameter of `model` (or its gradient) by name.
inline std::map<std::string, std::vector<float>> by_name(const models::Gpt2& model, bool grads) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& p : model.named_parameters())
    out[p.name] = grads ? p.tensor.grad().to_float_vector() : p.tensor.to_float_vector();
  return out;
}

// |got − want| ≤ rtol·(max|want| + |want|) elementwise: float32 rounding of sums taken in another
// order (the ranks' partial products) stays within a few 1e-7 of the scale.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rtol,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0.0;
  for (float v : want) scale = std::max(scale, static_cast<double>(std::abs(v)));
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::abs(got[i] - want[i]) <= rtol * (scale + std::abs(want[i]))) continue;
    if (++bad <= 5) ADD_FAILURE() << what << " element " << i << ": got " << got[i] << ", want " << want[i];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.size() << " elements differ";
}

// Forward and backward over the `micro_batches` micro-batches of `step` (each loss scaled by
// 1/micro_batches, gradients accumulating), reducing through `dp` when given (its gradients launched
// from the hooks in the last micro-batch). Returns the mean loss of this process's batch.
inline double accumulate_step(const models::Gpt2& model, io::DataLoader& data, int64_t step, int64_t micro_batches,
                              DataParallel* dp = nullptr) {
  double loss_sum = 0.0;
  for (int64_t micro = 0; micro < micro_batches; ++micro) {
    const io::Batch batch = data.batch(step, micro);
    Tensor loss = model.loss(batch.inputs, batch.targets);
    loss_sum += loss.item<double>() / static_cast<double>(micro_batches);
    if (dp != nullptr) dp->begin_micro_step(micro == micro_batches - 1);
    fn::scale(loss, 1.0f / static_cast<float>(micro_batches)).backward();
    if (dp != nullptr) dp->end_micro_step();
  }
  return loss_sum;
}

// The global gradient norm of every parameter of `model` (the single-process reference's).
inline double grad_norm_of(const models::Gpt2& model) {
  std::vector<Tensor> grads;
  for (const auto& p : model.parameters()) grads.push_back(p.grad());
  return optim::global_grad_norm(grads);
}

}  // namespace meridian::parallel::testing

#include "core/io/data_loader.h"

#include <array>
#include <span>
#include <utility>

#include "core/error.h"
#include "core/io/binary_file.h"
#include "core/random.h"

namespace meridian::io {

namespace {

void check_options(const DataLoaderOptions& options) {
  const auto require_positive = [](int64_t value, const char* what) {
    if (value < 1) MERIDIAN_FAIL("data loader: ", what, " must be at least 1, got ", value);
  };
  require_positive(options.micro_batch, "micro-batch size B");
  require_positive(options.seq_len, "sequence length T");
  require_positive(options.data_parallel_size, "data-parallel size D");
  require_positive(options.grad_accum_steps, "gradient accumulation steps K");
  if (options.data_parallel_rank < 0 || options.data_parallel_rank >= options.data_parallel_size)
    MERIDIAN_FAIL("data loader: data-parallel rank ", options.data_parallel_rank,
                  " is outside [0, ", options.data_parallel_size, ")");
}

}  // namespace

std::vector<int64_t> shuffled_window_order(uint64_t seed, int64_t epoch, int64_t windows) {
  std::vector<int64_t> order(static_cast<size_t>(windows));
  for (int64_t i = 0; i < windows; ++i) order[static_cast<size_t>(i)] = i;
  const uint64_t key = random::stream_key(seed, "shuffle");
  const std::array<uint32_t, 2> key_words = {static_cast<uint32_t>(key),
                                             static_cast<uint32_t>(key >> 32)};
  const auto e = static_cast<uint64_t>(epoch);
  for (int64_t i = windows - 1; i > 0; --i) {
    // Draw i of epoch e is Philox counter (i, e): independent of every other draw and of order.
    const auto u = static_cast<uint64_t>(i);
    const auto bits = random::philox4x32({static_cast<uint32_t>(u), static_cast<uint32_t>(u >> 32),
                                          static_cast<uint32_t>(e), static_cast<uint32_t>(e >> 32)},
                                         key_words);
    const uint64_t draw = (static_cast<uint64_t>(bits[0]) << 32) | bits[1];
    // The modulo bias is below (i + 1) / 2^64: irrelevant for any real number of windows.
    const auto j = static_cast<int64_t>(draw % (u + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

DataLoader::DataLoader(TokenDataset data, DataLoaderOptions options)
    : data_(std::move(data)), options_(options) {
  check_options(options_);
  sequences_per_step_ = checked_multiply(
      checked_multiply(options_.data_parallel_size, options_.grad_accum_steps, "data loader: D·K"),
      options_.micro_batch, "data loader: G = D·K·B");
  const int64_t step_tokens =
      checked_multiply(sequences_per_step_, options_.seq_len, "data loader: G·T");
  const int64_t tokens = data_.size();
  windows_per_epoch_ = (tokens - 1) / step_tokens;
  if (windows_per_epoch_ == 0)
    MERIDIAN_FAIL("data loader: ", data_.source(), " holds ", tokens,
                  " tokens, but one step needs G·T + 1 = ", step_tokens + 1,
                  " (G = D·K·B = ", options_.data_parallel_size, "·", options_.grad_accum_steps,
                  "·", options_.micro_batch, " = ", sequences_per_step_,
                  " sequences of T = ", options_.seq_len, " tokens, plus the last target)");
  if (options_.shuffle) order_cache_ = std::make_shared<WindowOrderCache>();
}

void DataLoader::check_step(int64_t step) const {
  if (step < 0) MERIDIAN_FAIL("data loader: step ", step, " is negative");
}

int64_t DataLoader::epoch_of(int64_t step) const {
  check_step(step);
  return step / windows_per_epoch_;
}

int64_t DataLoader::window_of(int64_t step) const {
  check_step(step);
  const int64_t position = step % windows_per_epoch_;
  if (!options_.shuffle) return position;
  const int64_t epoch = step / windows_per_epoch_;
  std::lock_guard<std::mutex> lock(order_cache_->mutex);
  if (order_cache_->epoch != epoch) {
    order_cache_->order = shuffled_window_order(options_.seed, epoch, windows_per_epoch_);
    order_cache_->epoch = epoch;
  }
  return order_cache_->order[static_cast<size_t>(position)];
}

int64_t DataLoader::global_sequence(int64_t micro_step, int64_t row) const {
  return (micro_step * options_.data_parallel_size + options_.data_parallel_rank) *
             options_.micro_batch +
         row;
}

Batch DataLoader::batch(int64_t step, int64_t micro_step) const {
  if (micro_step < 0 || micro_step >= options_.grad_accum_steps)
    MERIDIAN_FAIL("data loader: micro-step ", micro_step, " is outside [0, ",
                  options_.grad_accum_steps, ") (K = gradient accumulation steps)");
  const int64_t B = options_.micro_batch, T = options_.seq_len;
  const int64_t start = window_start(step);
  Batch out{Tensor::empty({B, T}, DType::i32), Tensor::empty({B, T}, DType::i32)};
  int32_t* inputs = out.inputs.data<int32_t>();
  int32_t* targets = out.targets.data<int32_t>();
  const std::span<const uint16_t> tokens = data_.tokens();
  for (int64_t row = 0; row < B; ++row) {
    const auto first = static_cast<size_t>(start + global_sequence(micro_step, row) * T);
    for (int64_t t = 0; t < T; ++t) {
      inputs[row * T + t] = tokens[first + static_cast<size_t>(t)];
      targets[row * T + t] = tokens[first + static_cast<size_t>(t) + 1];
    }
  }
  return out;
}

}  // namespace meridian::io

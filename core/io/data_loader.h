#pragma once
// Deterministic batches, as ARCHITECTURE.md's "Data" decision defines them. With micro-batch B,
// sequence length T, data-parallel size D and gradient accumulation K, step s covers G = D·K·B
// sequences read from one window of G·T + 1 tokens; sequence j of the window is tokens
// [start + j·T, start + j·T + T + 1): inputs the first T, targets the last T. Rank r's micro-step i
// takes sequences (i·D + r)·B ... (i·D + r)·B + B − 1. So every layout with the same G sees exactly
// the batch one process sees with micro-batch B·D·K.
//
// The data holds W = floor((N − 1) / (G·T)) whole windows. Step s reads window s mod W (at token
// (s mod W)·G·T), so the first epoch is simply s·G·T and a window that would run past the end
// starts again at token 0. With shuffling, each epoch visits the W windows in its own
// deterministic order instead.
//
// A batch is a pure function of (step, micro-step): resuming is starting at a step, and nothing
// about the loader needs saving beyond the step number.
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/io/token_dataset.h"
#include "core/tensor.h"

namespace meridian::io {

struct Batch {
  Tensor inputs;   // (B, T) i32
  Tensor targets;  // (B, T) i32: inputs shifted left by one token
};

struct DataLoaderOptions {
  int64_t micro_batch = 1;         // B: sequences per micro-step on one rank
  int64_t seq_len = 1;             // T
  int64_t data_parallel_size = 1;  // D
  int64_t data_parallel_rank = 0;  // r, in [0, D)
  int64_t grad_accum_steps = 1;    // K: micro-steps per optimizer step
  bool shuffle = false;            // visit windows in a per-epoch random order
  uint64_t seed = 0;               // of the shuffle; the same on every rank
};

class DataLoader {
 public:
  DataLoader(TokenDataset data, DataLoaderOptions options);

  // This rank's micro-batch `micro_step` (in [0, K)) of optimizer step `step` (≥ 0).
  Batch batch(int64_t step, int64_t micro_step = 0) const;

  int64_t sequences_per_step() const { return sequences_per_step_; }                  // G = D·K·B
  int64_t tokens_per_step() const { return sequences_per_step_ * options_.seq_len; }  // G·T
  int64_t windows_per_epoch() const { return windows_per_epoch_; }                    // W
  int64_t epoch_of(int64_t step) const;
  // The window step `step` reads (after shuffling) and the token its sequence 0 starts at.
  int64_t window_of(int64_t step) const;
  int64_t window_start(int64_t step) const { return window_of(step) * tokens_per_step(); }
  // Index, within the step's G sequences, of this rank's sequence `row` in micro-step `micro_step`.
  int64_t global_sequence(int64_t micro_step, int64_t row) const;

  const TokenDataset& data() const { return data_; }
  const DataLoaderOptions& options() const { return options_; }

 private:
  void check_step(int64_t step) const;

  TokenDataset data_;
  DataLoaderOptions options_;
  int64_t sequences_per_step_ = 0;
  int64_t windows_per_epoch_ = 0;

  // The shuffled window order of the most recent epoch asked for, so the micro-steps of an epoch
  // reuse it instead of redrawing W numbers each. Shared by copies: its contents are a pure
  // function of (seed, epoch), whoever computes them.
  struct WindowOrderCache {
    std::mutex mutex;
    int64_t epoch = -1;
    std::vector<int64_t> order;
  };
  std::shared_ptr<WindowOrderCache> order_cache_;
};

// The shuffled window order of one epoch: a permutation of [0, windows) drawn by Fisher–Yates from
// the counter-based RNG under stream (seed, "shuffle"), so it depends on nothing but its arguments.
std::vector<int64_t> shuffled_window_order(uint64_t seed, int64_t epoch, int64_t windows);

}  // namespace meridian::io

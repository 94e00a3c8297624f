#include "core/io/data_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "tests/io/io_test_util.h"

namespace meridian::io {
namespace {

using testing::expect_error;

// Token i has value i (mod 65536), so a token's value says where it was read from.
TokenDataset position_tokens(int64_t count) {
  std::vector<uint16_t> tokens(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    tokens[static_cast<size_t>(i)] = static_cast<uint16_t>(i % 65536);
  return TokenDataset(std::move(tokens), "position tokens");
}

struct Layout {
  int64_t B, T, D, K;
};

DataLoaderOptions options_for(const Layout& layout, int64_t rank, bool shuffle = false,
                              uint64_t seed = 0) {
  DataLoaderOptions options;
  options.micro_batch = layout.B;
  options.seq_len = layout.T;
  options.data_parallel_size = layout.D;
  options.data_parallel_rank = rank;
  options.grad_accum_steps = layout.K;
  options.shuffle = shuffle;
  options.seed = seed;
  return options;
}

std::vector<int32_t> row_of(const Tensor& tensor, int64_t row) {
  const int64_t T = tensor.dim(1);
  const int32_t* data = tensor.data<int32_t>() + row * T;
  return std::vector<int32_t>(data, data + T);
}

// The data rule of ARCHITECTURE.md written out directly, independent of DataLoader's code: the
// position of input token t of row b of rank r's micro-step i at step s (targets are one further).
int64_t expected_position(const Layout& l, int64_t tokens, int64_t step, int64_t rank,
                          int64_t micro_step, int64_t row, int64_t t) {
  const int64_t G = l.D * l.K * l.B;
  const int64_t windows = (tokens - 1) / (G * l.T);
  const int64_t window_start = (step % windows) * G * l.T;
  const int64_t sequence = (micro_step * l.D + rank) * l.B + row;
  return window_start + sequence * l.T + t;
}

const std::vector<Layout> kLayouts = {
    {1, 1, 1, 1}, {2, 3, 1, 1}, {1, 4, 2, 1}, {2, 5, 2, 3},
    {3, 2, 4, 2}, {1, 7, 3, 1}, {4, 3, 1, 4},
};

TEST(DataLoader, MatchesTheDataRuleByBruteForce) {
  for (const Layout& l : kLayouts) {
    // Three windows and G·T − 1 tokens more (one short of a fourth): steps wrap twice below.
    const int64_t tokens = 4 * l.D * l.K * l.B * l.T;
    const TokenDataset data = position_tokens(tokens);
    for (int64_t rank = 0; rank < l.D; ++rank) {
      const DataLoader loader(data, options_for(l, rank));
      ASSERT_EQ(loader.windows_per_epoch(), 3);
      for (int64_t step = 0; step < 7; ++step) {
        for (int64_t i = 0; i < l.K; ++i) {
          const Batch batch = loader.batch(step, i);
          ASSERT_EQ(batch.inputs.shape(), (Shape{l.B, l.T}));
          ASSERT_EQ(batch.targets.shape(), (Shape{l.B, l.T}));
          ASSERT_EQ(batch.inputs.dtype(), DType::i32);
          const int32_t* inputs = batch.inputs.data<int32_t>();
          const int32_t* targets = batch.targets.data<int32_t>();
          for (int64_t b = 0; b < l.B; ++b) {
            for (int64_t t = 0; t < l.T; ++t) {
              const int64_t position = expected_position(l, tokens, step, rank, i, b, t);
              ASSERT_EQ(inputs[b * l.T + t], position)
                  << "B=" << l.B << " T=" << l.T << " D=" << l.D << " K=" << l.K << " rank " << rank
                  << " step " << step << " micro-step " << i << " row " << b << " t " << t;
              ASSERT_EQ(targets[b * l.T + t], position + 1);
            }
          }
        }
      }
    }
  }
}

// Gathers every rank's micro-batches for one step into the G rows of the global batch, in global
// sequence order, and checks each row is produced exactly once.
std::vector<std::vector<int32_t>> global_batch(const TokenDataset& data, const Layout& l,
                                               int64_t step, bool shuffle, uint64_t seed) {
  const int64_t G = l.D * l.K * l.B;
  std::vector<std::vector<int32_t>> rows(static_cast<size_t>(2 * G));
  std::set<int64_t> seen;
  for (int64_t rank = 0; rank < l.D; ++rank) {
    const DataLoader loader(data, options_for(l, rank, shuffle, seed));
    for (int64_t i = 0; i < l.K; ++i) {
      const Batch batch = loader.batch(step, i);
      for (int64_t b = 0; b < l.B; ++b) {
        const int64_t j = loader.global_sequence(i, b);
        EXPECT_TRUE(seen.insert(j).second) << "sequence " << j << " produced twice";
        rows[static_cast<size_t>(j)] = row_of(batch.inputs, b);
        rows[static_cast<size_t>(G + j)] = row_of(batch.targets, b);
      }
    }
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), G);
  return rows;
}

void expect_every_layout_sees_the_single_process_batch(bool shuffle) {
  for (const Layout& l : kLayouts) {
    const int64_t G = l.D * l.K * l.B;
    const TokenDataset data = position_tokens(5 * G * l.T + 3);
    const Layout single{G, l.T, 1, 1};
    for (int64_t step = 0; step < 12; ++step) {
      SCOPED_TRACE(::testing::Message() << "B=" << l.B << " T=" << l.T << " D=" << l.D << " K="
                                        << l.K << " step " << step << (shuffle ? " shuffled" : ""));
      EXPECT_EQ(global_batch(data, l, step, shuffle, 42),
                global_batch(data, single, step, shuffle, 42));
    }
  }
}

TEST(DataLoader, UnionOfRanksIsTheSingleProcessBatch) {
  expect_every_layout_sees_the_single_process_batch(false);
}

TEST(DataLoader, UnionOfRanksIsTheSingleProcessBatchUnderShuffle) {
  expect_every_layout_sees_the_single_process_batch(true);
}

TEST(DataLoader, FirstEpochReadsWindowAtStepTimesStepTokens) {
  const Layout l{2, 4, 2, 1};  // G·T = 16
  const DataLoader loader(position_tokens(16 * 4 + 1), options_for(l, 0));
  EXPECT_EQ(loader.sequences_per_step(), 4);
  EXPECT_EQ(loader.tokens_per_step(), 16);
  EXPECT_EQ(loader.windows_per_epoch(), 4);
  for (int64_t step = 0; step < 4; ++step) {
    EXPECT_EQ(loader.window_start(step), step * 16);
    EXPECT_EQ(loader.batch(step).inputs.data<int32_t>()[0], step * 16);
  }
  // The last window's last target is the data's last token.
  const Batch last = DataLoader(position_tokens(65), options_for(l, 1)).batch(3);
  EXPECT_EQ(last.targets.data<int32_t>()[2 * 4 - 1], 64);
}

TEST(DataLoader, WrapsAroundToTokenZero) {
  const Layout l{1, 4, 1, 2};  // G·T = 8; 30 tokens hold 3 windows (the 4th would need token 32)
  const DataLoader loader(position_tokens(30), options_for(l, 0));
  ASSERT_EQ(loader.windows_per_epoch(), 3);
  for (int64_t step = 0; step < 10; ++step) {
    EXPECT_EQ(loader.epoch_of(step), step / 3);
    EXPECT_EQ(loader.window_start(step), (step % 3) * 8);
    for (int64_t i = 0; i < 2; ++i)
      EXPECT_EQ(row_of(loader.batch(step, i).inputs, 0),
                row_of(loader.batch(step % 3, i).inputs, 0));
  }
  EXPECT_EQ(loader.batch(3).inputs.data<int32_t>()[0], 0);
}

TEST(DataLoader, ExactlyOneWindowNeedsGTPlusOneTokens) {
  const Layout l{2, 3, 1, 1};  // G·T = 6
  EXPECT_EQ(DataLoader(position_tokens(7), options_for(l, 0)).windows_per_epoch(), 1);
  expect_error([&] { DataLoader(position_tokens(6), options_for(l, 0)); },
               {"position tokens", "holds 6 tokens", "G·T + 1 = 7"});
}

TEST(DataLoader, DataTooSmallForOneStepNamesTheSourceAndSizes) {
  const Layout l{4, 64, 2, 2};  // G·T = 1024
  expect_error(
      [&] {
        DataLoader(TokenDataset::from_text("tiny", "text file 'tiny.txt'"), options_for(l, 0));
      },
      {"text file 'tiny.txt'", "holds 4 tokens", "1025"});
}

TEST(DataLoader, RejectsBadOptions) {
  const TokenDataset data = position_tokens(1000);
  const Layout ok{2, 4, 2, 2};
  auto with = [&](auto change) {
    DataLoaderOptions options = options_for(ok, 0);
    change(options);
    return options;
  };
  expect_error([&] { DataLoader(data, with([](auto& o) { o.micro_batch = 0; })); },
               {"micro-batch", "got 0"});
  expect_error([&] { DataLoader(data, with([](auto& o) { o.seq_len = -3; })); },
               {"sequence length", "got -3"});
  expect_error([&] { DataLoader(data, with([](auto& o) { o.data_parallel_size = 0; })); },
               {"data-parallel size"});
  expect_error([&] { DataLoader(data, with([](auto& o) { o.grad_accum_steps = 0; })); },
               {"accumulation"});
  expect_error([&] { DataLoader(data, with([](auto& o) { o.data_parallel_rank = -1; })); },
               {"rank -1", "[0, 2)"});
  expect_error([&] { DataLoader(data, with([](auto& o) { o.data_parallel_rank = 2; })); },
               {"rank 2", "[0, 2)"});
}

TEST(DataLoader, RejectsBadStepAndMicroStep) {
  const DataLoader loader(position_tokens(1000), options_for({2, 4, 2, 2}, 1));
  expect_error([&] { loader.batch(-1, 0); }, {"step -1"});
  expect_error([&] { loader.batch(0, 2); }, {"micro-step 2", "[0, 2)"});
  expect_error([&] { loader.batch(0, -1); }, {"micro-step -1"});
}

TEST(DataLoader, ShuffleVisitsEveryWindowOncePerEpoch) {
  const Layout l{1, 4, 1, 1};
  const DataLoader loader(position_tokens(4 * 50 + 1), options_for(l, 0, true, 7));
  ASSERT_EQ(loader.windows_per_epoch(), 50);
  std::vector<std::vector<int64_t>> orders;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> order;
    for (int64_t p = 0; p < 50; ++p) order.push_back(loader.window_of(epoch * 50 + p));
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(50);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(sorted, all) << "epoch " << epoch << " is not a permutation of the windows";
    EXPECT_EQ(order, shuffled_window_order(7, epoch, 50));
    orders.push_back(order);
  }
  EXPECT_NE(orders[0], orders[1]);
  EXPECT_NE(orders[1], orders[2]);
  std::vector<int64_t> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(orders[0], identity);
}

TEST(DataLoader, ShuffleIsDeterministicAndDependsOnTheSeed) {
  const Layout l{2, 3, 1, 1};
  const TokenDataset data = position_tokens(6 * 20 + 1);
  const DataLoader first(data, options_for(l, 0, true, 1234));
  const DataLoader second(data, options_for(l, 0, true, 1234));
  const DataLoader other_seed(data, options_for(l, 0, true, 1235));
  // Asked in opposite orders: the batch of a step never depends on which steps came before.
  std::vector<std::vector<int32_t>> backward(60), forward(60);
  for (int64_t step = 59; step >= 0; --step)
    backward[static_cast<size_t>(step)] = row_of(first.batch(step).inputs, 1);
  for (int64_t step = 0; step < 60; ++step)
    forward[static_cast<size_t>(step)] = row_of(second.batch(step).inputs, 1);
  EXPECT_EQ(backward, forward);
  bool any_different = false;
  for (int64_t step = 0; step < 60; ++step)
    any_different |= first.window_of(step) != other_seed.window_of(step);
  EXPECT_TRUE(any_different);
}

TEST(DataLoader, ShuffleOrderIsPinned) {
  // Resuming a shuffled run with a newer build must read the same windows: this order may only
  // change together with a note that old runs cannot resume bit-exactly.
  EXPECT_EQ(shuffled_window_order(0, 0, 8), (std::vector<int64_t>{7, 4, 2, 0, 6, 1, 5, 3}));
  EXPECT_EQ(shuffled_window_order(0, 1, 8), (std::vector<int64_t>{5, 4, 1, 0, 6, 3, 2, 7}));
}

TEST(DataLoader, ResumingIsStartingAtAStep) {
  const Layout l{2, 4, 2, 2};
  const TokenDataset data = position_tokens(16 * 2 * 5 + 1);
  const DataLoader fresh(data, options_for(l, 1, true, 3));
  const DataLoader resumed(data, options_for(l, 1, true, 3));  // a new process after a restart
  for (int64_t step = 13; step < 20; ++step)
    for (int64_t i = 0; i < 2; ++i)
      EXPECT_EQ(row_of(resumed.batch(step, i).targets, 1), row_of(fresh.batch(step, i).targets, 1));
  EXPECT_EQ(resumed.epoch_of(13), 13 / 5);
}

TEST(DataLoader, CopiesShareNothingObservable) {
  const Layout l{1, 2, 1, 1};
  const DataLoader loader(position_tokens(41), options_for(l, 0, true, 9));
  const DataLoader copy = loader;
  for (int64_t step = 0; step < 60; ++step) EXPECT_EQ(copy.window_of(step), loader.window_of(step));
}

}  // namespace
}  // namespace meridian::io

// llm.c checkpoints and tensor parallelism: a file written from a tensor-parallel model (its
// pieces gathered over the group) holds the logical tensors, loading it into one process gives the
// unsharded model with the same weights, and loading a one-process file into a tensor-parallel
// model gives every rank its slices — also when tp pads the vocabulary beyond the file's.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "models/gpt2.h"
#include "models/gpt2_llmc.h"
#include "tensor_parallel_test_support.h"

namespace meridian::parallel {
namespace {

using testing::piece_of;

models::Gpt2Config tiny_gpt2() {
  models::Gpt2Config c;
  c.max_seq_len = 16;
  c.vocab_size = 61;
  c.padded_vocab_size = 66;  // tp = 4 pads it to 512
  c.num_layers = 2;
  c.num_heads = 4;
  c.channels = 16;
  return c;
}

// One path for every rank of the job (they share the machine); rank 0 writes it.
std::filesystem::path shared_path(const std::string& name) {
  return std::filesystem::path(::testing::TempDir()) /
         ("meridian_tp_" + name + "_np" + std::to_string(meridian::testing::runtime().world_size()) + ".bin");
}

void barrier() { meridian::testing::world().barrier()->wait(); }

std::map<std::string, std::vector<float>> values_by_name(const models::Gpt2& model) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& p : model.named_parameters()) out[p.name] = p.tensor.to_float_vector();
  return out;
}

TEST(TensorParallelCheckpoint, SavedPiecesLoadAsTheUnshardedModel) {
  models::Gpt2 sharded(tiny_gpt2(), {}, testing::world_tensor_parallel());
  sharded.initialize(5);
  const std::filesystem::path path = shared_path("save");
  models::save_llmc_weights(sharded, path);  // collective over the tp group; tp rank 0 writes
  barrier();

  models::Gpt2Config whole_config = tiny_gpt2();
  whole_config.padded_vocab_size = sharded.config().padded_vocab_size;  // the file's, as the trainer reads it
  models::Gpt2 loaded(whole_config), initialised(whole_config);
  models::load_llmc_weights(loaded, path);
  initialised.initialize(5);
  const auto want = values_by_name(initialised);
  for (const auto& [name, values] : values_by_name(loaded)) EXPECT_EQ(values, want.at(name)) << name;
  barrier();
  if (meridian::testing::runtime().world_rank() == 0) std::filesystem::remove(path);
}

TEST(TensorParallelCheckpoint, OneProcessFileLoadsAsSlicesOnEveryRank) {
  const std::filesystem::path path = shared_path("load");
  models::Gpt2 whole(tiny_gpt2());
  whole.initialize(7);
  if (meridian::testing::runtime().world_rank() == 0) models::save_llmc_weights(whole, path);
  barrier();

  models::Gpt2 sharded(tiny_gpt2(), {}, testing::world_tensor_parallel());
  models::load_llmc_weights(sharded, path);
  const auto want = values_by_name(whole);
  for (const auto& p : sharded.named_parameters()) {
    std::vector<float> logical = want.at(p.name);
    // Vocabulary rows past the file's padded size (tp = 4 pads 66 to 512) load as zeros.
    logical.resize(static_cast<size_t>(logical_numel(p.tensor.shape(), p.shard ? &*p.shard : nullptr)), 0.0f);
    EXPECT_EQ(p.tensor.to_float_vector(), piece_of(logical, p)) << p.name;
  }
  barrier();
  if (meridian::testing::runtime().world_rank() == 0) std::filesystem::remove(path);
}

}  // namespace
}  // namespace meridian::parallel

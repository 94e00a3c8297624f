#include "models/gpt2_pipeline_gather.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "core/error.h"
#include "parallel/tensor_parallel/shard_gather.h"

namespace meridian::models {
namespace {

// Parameter names travel as fixed-size i32 arrays of characters (GPT-2's longest is ~24).
constexpr int64_t kNameLength = 128;

Tensor encode_name(const std::string& name) {
  MERIDIAN_CHECK(static_cast<int64_t>(name.size()) < kNameLength, "parameter name too long: ", name);
  std::vector<int32_t> chars(kNameLength, 0);
  std::copy(name.begin(), name.end(), chars.begin());
  return Tensor::from_vector<int32_t>(chars, {kNameLength});
}

std::string decode_name(const Tensor& encoded) {
  const int32_t* chars = encoded.data<int32_t>();
  std::string name;
  for (int64_t i = 0; i < kNameLength && chars[i] != 0; ++i) name.push_back(static_cast<char>(chars[i]));
  return name;
}

// One stage's logical tensors, in its parameter order (collective over the stage's tp group).
std::vector<std::pair<std::string, Tensor>> logical_tensors(const Gpt2& chunk) {
  std::vector<std::pair<std::string, Tensor>> out;
  const parallel::TensorParallelContext& tensor_parallel = chunk.tensor_parallel();
  for (const nn::NamedParameter& p : chunk.named_parameters())
    out.emplace_back(p.name, tensor_parallel.enabled() ? parallel::gather_logical_tensor(p, *tensor_parallel.group)
                                                       : p.tensor.to(Device::cpu()));  // host values, from a GPU too
  return out;
}

}  // namespace

std::unique_ptr<Gpt2> gather_pipelined_model(const std::vector<const Gpt2*>& chunks, const parallel::ProcessGrid& grid) {
  MERIDIAN_CHECK(!chunks.empty(), "gather_pipelined_model: no model chunks");
  if (grid.coordinate(parallel::Axis::dp) != 0) return nullptr;
  const int pp = grid.shape().pp, tp_rank = grid.coordinate(parallel::Axis::tp);
  const int virtual_stages = static_cast<int>(chunks.size());
  comm::Communicator& world = grid.world();

  // Senders: the tp-0 rank of every stage outside world rank 0.
  std::vector<std::vector<std::pair<std::string, Tensor>>> mine;
  for (const Gpt2* chunk : chunks) mine.push_back(logical_tensors(*chunk));
  if (world.rank() != 0) {
    if (tp_rank != 0) return nullptr;
    int tag = 0;
    for (const auto& stage : mine) {
      Tensor count = Tensor::from_vector<int32_t>({static_cast<int32_t>(stage.size())}, {1});
      world.send(count, 0, tag++)->wait();
      for (const auto& [name, tensor] : stage) {
        world.send(encode_name(name), 0, tag++)->wait();
        world.send(tensor.contiguous(), 0, tag++)->wait();
      }
    }
    return nullptr;
  }

  // World rank 0: the whole model, without tensor parallelism, filled stage by stage.
  auto whole = std::make_unique<Gpt2>(chunks.front()->config());
  std::map<std::string, Tensor> params;
  for (const nn::NamedParameter& p : whole->named_parameters()) params.emplace(p.name, p.tensor);
  std::set<std::string> filled;
  auto fill = [&](const std::string& name, const Tensor& value, int stage) {
    auto found = params.find(name);
    if (found == params.end() || found->second.numel() != value.numel())
      MERIDIAN_FAIL("gathering the pipelined model: stage ", stage, "'s parameter ", name,
                    found == params.end() ? " is not part of the model"
                                          : " has " + std::to_string(value.numel()) + " elements, the model " +
                                                std::to_string(found->second.numel()));
    if (filled.insert(name).second) std::copy_n(value.data<float>(), value.numel(), found->second.data<float>());
  };
  // Rank 0's own stages (pp rank 0), then every other pp rank's, received in the order it sends
  // them (its chunks in order) so the tags match.
  for (int chunk = 0; chunk < virtual_stages; ++chunk)
    for (const auto& [name, tensor] : mine[static_cast<size_t>(chunk)]) fill(name, tensor.contiguous(), chunk * pp);
  for (int pp_rank = 1; pp_rank < pp; ++pp_rank) {
    const int source = grid.layout().world_rank({0, 0, pp_rank});
    int tag = 0;
    for (int chunk = 0; chunk < virtual_stages; ++chunk) {
      const int stage = chunk * pp + pp_rank;
      Tensor count = Tensor::empty({1}, DType::i32);
      world.recv(count, source, tag++)->wait();
      for (int32_t i = 0; i < count.data<int32_t>()[0]; ++i) {
        Tensor encoded = Tensor::empty({kNameLength}, DType::i32);
        world.recv(encoded, source, tag++)->wait();
        const std::string name = decode_name(encoded);
        auto found = params.find(name);
        if (found == params.end())
          MERIDIAN_FAIL("gathering the pipelined model: stage ", stage, " sent unknown parameter ", name);
        Tensor value = Tensor::empty(found->second.shape());
        world.recv(value, source, tag++)->wait();
        fill(name, value, stage);
      }
    }
  }
  for (const auto& [name, tensor] : params)
    MERIDIAN_CHECK(filled.contains(name), "gathering the pipelined model: no stage holds ", name);
  return whole;
}

}  // namespace meridian::models

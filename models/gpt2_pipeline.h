#pragma once
// GPT-2 as pipeline stages: the adapter between models::Gpt2 and the pipeline engine's abstract
// stage (parallel/pipeline/pipeline_stage.h). A chunk owns a Gpt2 built with the placement of its
// global stage (pipeline_placement) and knows the step's micro-batches: the first stage embeds the
// tokens, every stage runs its blocks, the last applies the final norm and head and returns the
// mean loss of the micro-batch.
#include <cstdint>
#include <memory>
#include <vector>

#include "models/gpt2.h"
#include "parallel/pipeline/pipeline_stage.h"
#include "parallel/pipeline/stage_partition.h"

namespace meridian::models {

// The tied token embedding / output head's name on every stage that holds a copy of it.
inline constexpr const char* kGpt2TiedParameter = "wte.weight";

// Global stage `stage` of a partition: its blocks, the embedding on stage 0, the head (and its own
// copy of the tied embedding) on the last stage.
Gpt2Placement pipeline_placement(const std::vector<parallel::StageBlocks>& partition, int stage);

struct Gpt2MicroBatch {
  Tensor inputs;   // (b, T) i32
  Tensor targets;  // (b, T) i32
};

// The step's micro-batches on this rank: each of `batches` (B, T) split into `per_batch` row blocks
// of B / per_batch sequences (views), in order. Throws when per_batch does not divide B.
std::vector<Gpt2MicroBatch> split_micro_batches(const std::vector<Gpt2MicroBatch>& batches, int64_t per_batch);

class Gpt2PipelineChunk final : public parallel::PipelineStage {
 public:
  // `model` is built with this chunk's placement (and whatever else the layout needs).
  Gpt2PipelineChunk(std::unique_ptr<Gpt2> model, bool recompute);

  Gpt2& model() { return *model_; }
  const Gpt2& model() const { return *model_; }
  // The micro-batches of the coming step, the same list on every stage.
  void set_micro_batches(std::vector<Gpt2MicroBatch> micro_batches);

  Tensor forward(int micro_batch, const Tensor& input) override;

 private:
  std::unique_ptr<Gpt2> model_;
  bool recompute_;
  std::vector<Gpt2MicroBatch> micro_batches_;
};

}  // namespace meridian::models

#include "models/gpt2_pipeline.h"

#include "core/error.h"

namespace meridian::models {

Gpt2Placement pipeline_placement(const std::vector<parallel::StageBlocks>& partition, int stage) {
  MERIDIAN_CHECK(stage >= 0 && stage < static_cast<int>(partition.size()), "pipeline_placement: stage ", stage,
                 " of ", partition.size());
  const parallel::StageBlocks& blocks = partition[static_cast<size_t>(stage)];
  return {blocks.first_block, blocks.num_blocks, stage == 0, stage == static_cast<int>(partition.size()) - 1};
}

std::vector<Gpt2MicroBatch> split_micro_batches(const std::vector<Gpt2MicroBatch>& batches, int64_t per_batch) {
  MERIDIAN_CHECK(per_batch >= 1, "split_micro_batches: ", per_batch, " micro-batches");
  std::vector<Gpt2MicroBatch> out;
  for (const Gpt2MicroBatch& batch : batches) {
    const int64_t rows = batch.inputs.dim(0);
    if (rows % per_batch != 0)
      MERIDIAN_FAIL("pipeline: a batch of ", rows, " sequences does not split into ", per_batch,
                    " equal micro-batches");
    const int64_t size = rows / per_batch;
    for (int64_t m = 0; m < per_batch; ++m)
      out.push_back({batch.inputs.slice(m * size, (m + 1) * size), batch.targets.slice(m * size, (m + 1) * size)});
  }
  return out;
}

Gpt2PipelineChunk::Gpt2PipelineChunk(std::unique_ptr<Gpt2> model, bool recompute)
    : model_(std::move(model)), recompute_(recompute) {
  MERIDIAN_CHECK(model_ != nullptr, "Gpt2PipelineChunk needs a model");
}

void Gpt2PipelineChunk::set_micro_batches(std::vector<Gpt2MicroBatch> micro_batches) {
  micro_batches_ = std::move(micro_batches);
}

Tensor Gpt2PipelineChunk::forward(int micro_batch, const Tensor& input) {
  if (micro_batch < 0 || micro_batch >= static_cast<int>(micro_batches_.size()))
    MERIDIAN_FAIL("gpt2 pipeline stage: micro-batch ", micro_batch, " of ", micro_batches_.size(), " given");
  const Gpt2MicroBatch& data = micro_batches_[static_cast<size_t>(micro_batch)];
  const Gpt2Placement& placement = model_->placement();
  const Tensor hidden = model_->run_blocks(placement.embedding ? model_->embed(data.inputs) : input, recompute_);
  return placement.head ? model_->head_loss(hidden, data.targets) : hidden;
}

}  // namespace meridian::models

#pragma once
// What the pipeline engine runs: one model chunk (one global stage). The engine knows nothing of
// the model; an adapter above parallel/ (models/gpt2_pipeline.h for GPT-2) implements this for a
// slice of a concrete model and reads each micro-batch's data itself (the first stage needs the
// tokens, the last the targets).
#include "core/tensor.h"

namespace meridian::parallel {

class PipelineStage {
 public:
  virtual ~PipelineStage() = default;

  // Runs this chunk on micro-batch `micro_batch` with autograd recording. `input` is the activation
  // from the previous global stage — a leaf that requires grad — or undefined on the first stage.
  // Returns the activation for the next stage (the engine's activation shape), or on the last
  // stage the micro-batch's mean loss as a one-element tensor.
  virtual Tensor forward(int micro_batch, const Tensor& input) = 0;
};

}  // namespace meridian::parallel

#pragma once
// A pre-norm transformer block (nn::Block) with tensor-parallel attention and MLP. The LayerNorms
// and residual adds run on the block's input layout: replicated (B, T, C), or this rank's
// (B, T/tp, C) under sequence parallelism, where their parameters see only this rank's positions
// (their gradients are partial and summed over the group before the optimizer, see DataParallel).
#include <cstdint>
#include <memory>

#include "core/nn/layers.h"
#include "core/nn/module.h"
#include "parallel/tensor_parallel/parallel_attention.h"
#include "parallel/tensor_parallel/parallel_mlp.h"

namespace meridian::parallel {

class ParallelBlock : public nn::Module {
 public:
  ParallelBlock(int64_t channels, int64_t num_heads, float init_std, float projection_std,
                TensorParallelContext context);
  // With recompute on, activations are rebuilt during backward (the block's collectives run again
  // then, in the same order on every rank).
  Tensor forward(const Tensor& x, bool recompute = false) const;

 private:
  Tensor forward_body(const Tensor& x) const;

  std::shared_ptr<nn::LayerNorm> ln_1_;
  std::shared_ptr<ParallelAttention> attn_;
  std::shared_ptr<nn::LayerNorm> ln_2_;
  std::shared_ptr<ParallelMlp> mlp_;
};

}  // namespace meridian::parallel

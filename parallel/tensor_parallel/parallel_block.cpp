#include "parallel/tensor_parallel/parallel_block.h"

#include "core/autograd/checkpoint.h"
#include "core/functions/functions.h"

namespace meridian::parallel {

ParallelBlock::ParallelBlock(int64_t channels, int64_t num_heads, float init_std, float projection_std,
                             TensorParallelContext context) {
  ln_1_ = register_module("ln_1", std::make_shared<nn::LayerNorm>(channels));
  attn_ = register_module("attn", std::make_shared<ParallelAttention>(channels, num_heads, init_std, projection_std,
                                                                      context));
  ln_2_ = register_module("ln_2", std::make_shared<nn::LayerNorm>(channels));
  mlp_ = register_module("mlp", std::make_shared<ParallelMlp>(channels, init_std, projection_std, context));
}

Tensor ParallelBlock::forward_body(const Tensor& x) const {
  Tensor h = fn::add(x, attn_->forward(ln_1_->forward(x)));
  return fn::add(h, mlp_->forward(ln_2_->forward(h)));
}

Tensor ParallelBlock::forward(const Tensor& x, bool recompute) const {
  if (!recompute) return forward_body(x);
  return autograd::checkpoint([this](const Tensor& input) { return forward_body(input); }, x, parameters());
}

}  // namespace meridian::parallel

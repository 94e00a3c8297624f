#include "core/autograd/checkpoint.h"

#include "core/autograd/engine.h"
#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"

namespace meridian::autograd {

Tensor checkpoint(const Block& block, const Tensor& input, const std::vector<Tensor>& parameters) {
  Tensor output;
  {
    NoGradGuard no_grad;
    output = block(input.detach());
  }
  if (!GradMode::is_enabled()) return output;

  std::vector<Tensor> inputs{input};
  inputs.insert(inputs.end(), parameters.begin(), parameters.end());
  record("checkpoint", inputs, output, [block, input](BackwardContext& ctx) {
    // Re-run the block on a detached leaf that shares the input's memory; its gradient lands directly
    // in the outer graph's buffer for the input. Parameter gradients go to their .grad as usual; their
    // hooks are left to the outer pass, which counts this node among their users.
    Tensor leaf = input.detach();
    const bool input_needs_grad = ctx.needs_input_grad(0);
    if (input_needs_grad) {
      leaf.set_requires_grad(true);
      leaf.set_grad(ctx.input_grad(0));
    }
    Tensor recomputed;
    {
      EnableGradGuard grad;
      recomputed = block(leaf);
    }
    if (!recomputed.requires_grad()) return;
    run_backward(recomputed, ctx.grad_output(), {.retain_graph = false, .fire_hooks = false});
  });
  return output;
}

}  // namespace meridian::autograd

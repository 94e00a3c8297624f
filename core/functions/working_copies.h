#pragma once
// Working copies of master weights, converted once per training step.
//
// Under mixed precision `linear`, `linear_gelu`, `mlp` and `layer_norm` convert an f32 master weight
// (and bias) to the compute dtype at each use and keep the copy for backward. Without a scope that
// is one conversion per use: per micro-batch under gradient accumulation, one copy alive per
// micro-batch in flight in a pipeline, and another conversion per recomputed forward. While a
// WorkingCopies scope is open on a thread, each master weight is converted at its first use and
// that one copy serves every later use on the thread until the scope closes — Megatron-LM's bf16
// parameters beside fp32 master weights, kept only for the step.
//
//   for each step:
//     { fn::WorkingCopies copies;  for each micro-batch: loss = model.loss(...); loss.backward(); }
//     optimizer.step(...);  // after the scope: it changes the weights the copies were made from
//
// The weights must not change while the scope is open: `optim::Optimizer::step` refuses to run
// inside one, and a weight moved to other storage (nn::Module::to, parameter flattening) is
// converted again. Only trained parameters (leaves that require grad) are cached, not computed,
// detached or frozen tensors; a weight already in the compute dtype needs no copy. Scopes nest: an
// inner one shares the outermost's copies (the trainers open one per step, and
// PipelineParallel::forward_backward opens its own).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/tensor.h"

namespace meridian::fn {

class WorkingCopies {
 public:
  WorkingCopies();
  ~WorkingCopies();
  WorkingCopies(const WorkingCopies&) = delete;
  WorkingCopies& operator=(const WorkingCopies&) = delete;

  // Of the cache this scope uses (the outermost open one's): conversions made, and the bytes of
  // the copies held.
  int64_t conversions() const;
  size_t bytes() const;

  struct Cache;

 private:
  std::unique_ptr<Cache> owned_;  // null in a nested scope
};

// Whether a WorkingCopies scope is open on this thread.
bool working_copies_open();

namespace detail {

// `weight` in `dtype`: the weight itself when it has that dtype; else the open scope's copy of it
// (converted now if this is its first use in the scope); else, with no scope open, a fresh copy.
Tensor working_copy(const Tensor& weight, DType dtype);

}  // namespace detail

}  // namespace meridian::fn

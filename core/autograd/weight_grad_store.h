#pragma once
// Deferred weight gradients, for zero-bubble pipeline schedules (ZB-H1, Qi et al. 2023).
//
// A backward pass normally computes, for every linear layer, the gradient of its input (needed by
// the layer below, and by the previous pipeline stage) and of its weight (needed only by the
// optimizer). A zero-bubble schedule runs them apart: the "B" pass computes input gradients only,
// and the "W" pass computes the weight gradients later, in what would otherwise be idle time.
//
//   autograd::WeightGradStore store;
//   {
//     autograd::DeferWeightGrads defer(store);
//     autograd::run_backward(output, grad);   // B: input gradients now; weight work queued
//   }
//   ...
//   store.run();                              // W: the queued weight gradients, in order
//
// Only functions that can split their backward queue work (today `fn::linear`, whose weight
// gradient costs as much as its input gradient); the others compute everything during B as usual.
// Outside a DeferWeightGrads scope nothing changes: the default path is the same code as before.
//
// Beware grad-ready hooks: a leaf's hook fires when the engine has finished the pass, which under
// deferral is before the W pass has added its weight gradient. Whoever reacts to those hooks (data
// parallelism) must not read the gradient then: see DataParallelOptions::launch_from_hooks.
#include <cstddef>
#include <functional>
#include <vector>

namespace meridian::autograd {

class WeightGradStore {
 public:
  WeightGradStore() = default;
  WeightGradStore(const WeightGradStore&) = delete;
  WeightGradStore& operator=(const WeightGradStore&) = delete;
  WeightGradStore(WeightGradStore&&) = default;
  WeightGradStore& operator=(WeightGradStore&&) = default;

  // Queues weight-gradient work; it keeps what it captured (activations, output gradients) alive.
  void add(std::function<void()> work);
  // Runs the queued work in the order it was queued, then forgets it (and what it captured).
  void run();
  bool empty() const { return work_.empty(); }
  size_t size() const { return work_.size(); }

 private:
  std::vector<std::function<void()>> work_;
};

// While alive, backward passes on this thread queue their deferrable weight gradients in `store`.
// Scopes nest; the innermost wins.
class DeferWeightGrads {
 public:
  explicit DeferWeightGrads(WeightGradStore& store);
  ~DeferWeightGrads();
  DeferWeightGrads(const DeferWeightGrads&) = delete;
  DeferWeightGrads& operator=(const DeferWeightGrads&) = delete;

 private:
  WeightGradStore* previous_;
};

// The store of the innermost DeferWeightGrads on this thread, or nullptr (compute everything now).
WeightGradStore* deferred_weight_grads();

}  // namespace meridian::autograd

#include "core/autograd/weight_grad_store.h"

#include <utility>

namespace meridian::autograd {

namespace {
thread_local WeightGradStore* t_store = nullptr;
}  // namespace

void WeightGradStore::add(std::function<void()> work) { work_.push_back(std::move(work)); }

void WeightGradStore::run() {
  // Moved out first: the work may be large closures, and a throw must not leave half of it queued.
  std::vector<std::function<void()>> work = std::move(work_);
  work_.clear();
  for (auto& item : work) {
    item();
    item = nullptr;  // release what it captured as soon as it has run
  }
}

DeferWeightGrads::DeferWeightGrads(WeightGradStore& store) : previous_(t_store) { t_store = &store; }

DeferWeightGrads::~DeferWeightGrads() { t_store = previous_; }

WeightGradStore* deferred_weight_grads() { return t_store; }

}  // namespace meridian::autograd

#pragma once
// Optimizers update parameters from their .grad. They see a list of tensors, not a model, so that
// ZeRO can hand them the shard of the flattened parameters a rank owns.
#include <cstdint>
#include <string>
#include <vector>

#include "core/nn/module.h"
#include "core/tensor.h"

namespace meridian::optim {

struct OptimizerParam {
  std::string name;
  Tensor param;  // contiguous f32; its .grad is read
  bool weight_decay = true;
};

std::vector<OptimizerParam> optimizer_params(const std::vector<nn::NamedParameter>& parameters);

class Optimizer {
 public:
  explicit Optimizer(std::vector<OptimizerParam> params);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update at learning rate `lr`, gradients multiplied by `grad_scale` (global-norm clipping).
  // Parameters without a gradient are skipped.
  virtual void step(float lr, float grad_scale = 1.0f) = 0;
  void zero_grad();  // zeroes every .grad in place (the buffers stay allocated)
  int64_t steps_taken() const { return steps_; }
  virtual size_t state_bytes() const = 0;  // optimizer state memory on this rank
  const std::vector<OptimizerParam>& params() const { return params_; }

 protected:
  // Fails when a fn::WorkingCopies scope is open: the step would change the weights its copies
  // were made from, and the rest of the scope would compute with stale values.
  static void check_no_working_copies(const char* optimizer);

  std::vector<OptimizerParam> params_;
  int64_t steps_ = 0;
};

struct AdamWOptions {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // applied to parameters whose weight_decay flag is set
};

// torch.optim.AdamW: decoupled weight decay, bias-corrected moments.
class AdamW final : public Optimizer {
 public:
  AdamW(std::vector<OptimizerParam> params, AdamWOptions options);
  void step(float lr, float grad_scale = 1.0f) override;
  size_t state_bytes() const override;
  const Tensor& first_moment(size_t i) const { return m_.at(i); }
  const Tensor& second_moment(size_t i) const { return v_.at(i); }

 private:
  AdamWOptions options_;
  std::vector<Tensor> m_;
  std::vector<Tensor> v_;
};

struct SgdOptions {
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

// torch.optim.SGD with momentum.
class Sgd final : public Optimizer {
 public:
  Sgd(std::vector<OptimizerParam> params, SgdOptions options);
  void step(float lr, float grad_scale = 1.0f) override;
  size_t state_bytes() const override;

 private:
  SgdOptions options_;
  std::vector<Tensor> momentum_;
};

// √(Σ over tensors of Σ g²) of the given gradients (undefined ones skipped).
double global_grad_norm(const std::vector<Tensor>& grads);
// The factor clip_grad_norm_ applies: min(1, max_norm / (norm + 1e-6)); 1 when max_norm ≤ 0.
float clip_coefficient(double norm, double max_norm);

}  // namespace meridian::optim

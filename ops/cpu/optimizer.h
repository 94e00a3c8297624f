#pragma once
// Fused optimizer updates: one pass over memory per parameter tensor.
#include <cmath>
#include <cstdint>

namespace meridian::ops::cpu {

struct AdamWHyper {
  float lr = 3e-4f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled: param −= lr · weight_decay · param
  int64_t step = 1;           // 1-based, for bias correction
  float grad_scale = 1.0f;    // gradients are multiplied by this first (global-norm clipping)
};

// PyTorch's AdamW: p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
// p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps).
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& hyper);

// AdamW's per-step scalars, formed once per call; the CPU kernel and its CUDA twin both use them, so
// they round identically.
struct AdamWScalars {
  float grad_scale;
  float decay;  // 1 − lr·weight_decay
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float bias_correction2_sqrt;
  float eps;
  float step_size;  // lr / (1 − β1ᵗ)
};

// Scalars are formed in double and rounded once, as PyTorch does with its Python-float
// hyper-parameters.
inline AdamWScalars adamw_scalars(const AdamWHyper& hyper) {
  const double step = static_cast<double>(hyper.step);
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(hyper.beta1), step);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(hyper.beta2), step);
  return {hyper.grad_scale,
          static_cast<float>(1.0 - static_cast<double>(hyper.lr) * static_cast<double>(hyper.weight_decay)),
          hyper.beta1,
          static_cast<float>(1.0 - static_cast<double>(hyper.beta1)),
          hyper.beta2,
          static_cast<float>(1.0 - static_cast<double>(hyper.beta2)),
          static_cast<float>(std::sqrt(bias_correction2)),
          hyper.eps,
          static_cast<float>(static_cast<double>(hyper.lr) / bias_correction1)};
}


struct SgdHyper {
  float lr = 1e-2f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;  // coupled (added to the gradient), as torch.optim.SGD
  bool nesterov = false;
  bool first_step = true;     // the momentum buffer starts as the first gradient
  float grad_scale = 1.0f;
};

// torch.optim.SGD semantics. momentum_buffer may be null when momentum == 0.
void sgd_update(float* param, const float* grad, float* momentum_buffer, int64_t n, const SgdHyper& hyper);

// Σ x², accumulated in double (the global gradient norm is the square root of the sum over tensors).
double sum_of_squares(const float* x, int64_t n);

}  // namespace meridian::ops::cpu

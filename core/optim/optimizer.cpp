#include "core/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/cuda_dispatch.h"
#include "core/functions/working_copies.h"
#include "core/profiler.h"
#include "ops/cpu/optimizer.h"

#if MERIDIAN_CUDA
#include "ops/cuda/optimizer.h"
#endif

namespace meridian::optim {

std::vector<OptimizerParam> optimizer_params(const std::vector<nn::NamedParameter>& parameters) {
  std::vector<OptimizerParam> out;
  out.reserve(parameters.size());
  for (const auto& p : parameters) out.push_back({p.name, p.tensor, p.weight_decay});
  return out;
}

Optimizer::Optimizer(std::vector<OptimizerParam> params) : params_(std::move(params)) {
  for (const auto& p : params_)
    if (p.param.dtype() != DType::f32 || !p.param.is_contiguous())
      MERIDIAN_FAIL("optimizer: parameter '", p.name, "' must be a contiguous f32 tensor");
}

void Optimizer::check_no_working_copies(const char* optimizer) {
  if (fn::working_copies_open())
    MERIDIAN_FAIL(optimizer, ".step: called inside an fn::WorkingCopies scope, whose working copies of the weights "
                  "would then be stale: close the scope (end of the forward and backward passes) before the step");
}

void Optimizer::zero_grad() {
  for (auto& p : params_)
    if (p.param.grad().defined()) p.param.grad().detach().zero_();
}

namespace {
Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype(), t.device()); }

const float* checked_grad(const OptimizerParam& p) {
  const Tensor& grad = p.param.grad();
  if (!grad.defined()) return nullptr;
  MERIDIAN_CHECK(grad.is_contiguous(), "gradient of '", p.name, "' is not contiguous");
  if (grad.device() != p.param.device())
    MERIDIAN_FAIL("optimizer: gradient of '", p.name, "' is on ", grad.device().to_string(), ", the parameter on ",
                  p.param.device().to_string());
  return grad.data<float>();
}
}  // namespace

AdamW::AdamW(std::vector<OptimizerParam> params, AdamWOptions options)
    : Optimizer(std::move(params)), options_(options) {
  for (const auto& p : params_) {
    m_.push_back(zeros_like(p.param));
    v_.push_back(zeros_like(p.param));
  }
}

void AdamW::step(float lr, float grad_scale) {
  profiler::Scope scope("adamw", "step");
  check_no_working_copies("AdamW");
  ++steps_;
  ops::cpu::AdamWHyper plain;
  plain.lr = lr;
  plain.beta1 = options_.beta1;
  plain.beta2 = options_.beta2;
  plain.eps = options_.eps;
  plain.step = steps_;
  plain.grad_scale = grad_scale;
  ops::cpu::AdamWHyper decayed = plain;
  decayed.weight_decay = options_.weight_decay;
#if MERIDIAN_CUDA
  // cuda parameters: one multi-tensor update per device (a few launches for all of them).
  std::vector<std::pair<Device, std::vector<ops::cuda::AdamWTensor>>> by_device;
#endif
  for (size_t i = 0; i < params_.size(); ++i) {
    const float* grad = checked_grad(params_[i]);
    if (!grad) continue;
    const Device device = params_[i].param.device();
    const bool decay = params_[i].weight_decay;
    if (device.is_cuda()) {
#if MERIDIAN_CUDA
      auto it = std::find_if(by_device.begin(), by_device.end(), [&](const auto& d) { return d.first == device; });
      if (it == by_device.end()) it = by_device.insert(by_device.end(), {device, {}});
      it->second.push_back({params_[i].param.data<float>(), grad, m_[i].data<float>(), v_[i].data<float>(),
                            params_[i].param.numel(), decay});
#endif
      continue;
    }
    ops::cpu::adamw_update(params_[i].param.data<float>(), grad, m_[i].data<float>(), v_[i].data<float>(),
                           params_[i].param.numel(), decay ? decayed : plain);
  }
#if MERIDIAN_CUDA
  // The same update as the cpu's, element for element: the step's scalars are formed on the host.
  for (const auto& [device, tensors] : by_device) {
    const detail::CudaScope cuda(device);
    ops::cuda::adamw_update_many(tensors.data(), static_cast<int>(tensors.size()), decayed, plain, cuda.stream());
  }
#endif
}

size_t AdamW::state_bytes() const {
  size_t bytes = 0;
  for (size_t i = 0; i < m_.size(); ++i) bytes += m_[i].nbytes() + v_[i].nbytes();
  return bytes;
}

Sgd::Sgd(std::vector<OptimizerParam> params, SgdOptions options) : Optimizer(std::move(params)), options_(options) {
  for (const auto& p : params_)
    if (!p.param.device().is_cpu())
      MERIDIAN_FAIL("sgd: parameter '", p.name, "' is on ", p.param.device().to_string(),
                    "; SGD has no CUDA kernel yet (use AdamW on the GPU)");
  if (options_.nesterov && (options_.momentum <= 0.0f || options_.dampening != 0.0f))
    MERIDIAN_FAIL("sgd: nesterov momentum needs momentum > 0 and dampening 0");
  if (options_.momentum != 0.0f)
    for (const auto& p : params_) momentum_.push_back(zeros_like(p.param));
}

void Sgd::step(float lr, float grad_scale) {
  profiler::Scope scope("sgd", "step");
  check_no_working_copies("Sgd");
  const bool first = steps_ == 0;
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const float* grad = checked_grad(params_[i]);
    if (!grad) continue;
    ops::cpu::SgdHyper hyper;
    hyper.lr = lr;
    hyper.momentum = options_.momentum;
    hyper.dampening = options_.dampening;
    hyper.weight_decay = params_[i].weight_decay ? options_.weight_decay : 0.0f;
    hyper.nesterov = options_.nesterov;
    hyper.first_step = first;
    hyper.grad_scale = grad_scale;
    ops::cpu::sgd_update(params_[i].param.data<float>(), grad,
                         momentum_.empty() ? nullptr : momentum_[i].data<float>(), params_[i].param.numel(), hyper);
  }
}

size_t Sgd::state_bytes() const {
  size_t bytes = 0;
  for (const auto& m : momentum_) bytes += m.nbytes();
  return bytes;
}

double global_grad_norm(const std::vector<Tensor>& grads) {
  double total = 0.0;
#if MERIDIAN_CUDA
  // cuda gradients: Σ g² of all of a device's tensors in a few stream-ordered launches
  // (ops::cuda::sum_of_squares_many), one read back per device.
  std::vector<std::pair<Device, std::vector<const Tensor*>>> by_device;
  for (const auto& g : grads) {
    if (!g.defined() || !g.device().is_cuda()) continue;
    MERIDIAN_CHECK(g.is_contiguous(), "global_grad_norm: gradient '", g.name(), "' on ", g.device().to_string(),
                   " is not contiguous");
    MERIDIAN_CHECK(g.dtype() == DType::f32, "global_grad_norm: gradient '", g.name(), "' is ",
                   dtype_name(g.dtype()), ", not f32");
    auto it = std::find_if(by_device.begin(), by_device.end(), [&](const auto& d) { return d.first == g.device(); });
    if (it == by_device.end()) it = by_device.insert(by_device.end(), {g.device(), {}});
    it->second.push_back(&g);
  }
  for (const auto& [device, tensors] : by_device) {
    std::vector<const float*> data;
    std::vector<int64_t> sizes;
    for (const Tensor* g : tensors) {
      data.push_back(g->data<float>());
      sizes.push_back(g->numel());
    }
    const int count = static_cast<int>(data.size());
    // Scratch: the result, then the partials (doubles), in one f32 tensor of the same bytes.
    const int64_t doubles = 1 + ops::cuda::sum_of_squares_many_partials(sizes.data(), count);
    const Tensor scratch = Tensor::empty({2 * doubles}, DType::f32, device);
    auto* result = static_cast<double*>(scratch.raw_data());  // allocator blocks are 512-byte aligned
    const detail::CudaScope cuda(device);
    ops::cuda::sum_of_squares_many(result, result + 1, data.data(), sizes.data(), count, cuda.stream());
    double device_total = 0.0;
    ops::cuda::copy_to_host(&device_total, result, sizeof(double), cuda.stream());
    ops::cuda::synchronize(cuda.stream());
    total += device_total;
  }
#endif
  for (const auto& g : grads)
    if (g.defined() && g.device().is_cpu()) total += ops::cpu::sum_of_squares(g.contiguous().data<float>(), g.numel());
  return std::sqrt(total);
}

float clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0.0) return 1.0f;
  const double coefficient = max_norm / (norm + 1e-6);
  return static_cast<float>(std::min(1.0, coefficient));
}

}  // namespace meridian::optim

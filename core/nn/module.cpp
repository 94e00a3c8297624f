#include "core/nn/module.h"

#include <memory>
#include <unordered_set>

namespace meridian::nn {

Tensor Module::register_parameter(const std::string& name, const Shape& shape, InitSpec init,
                                  std::optional<bool> weight_decay, std::optional<ShardSpec> shard) {
  for (const auto& existing : parameters_)
    MERIDIAN_CHECK(existing.name != name, "parameter '", name, "' registered twice");
  Tensor tensor = Tensor::zeros(shape);
  tensor.set_requires_grad(true);
  tensor.set_name(name);
  parameters_.push_back({name, tensor, init, weight_decay.value_or(shape.size() >= 2), std::move(shard)});
  return tensor;
}

void Module::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  for (const auto& p : parameters_) {
    NamedParameter full = p;
    full.name = prefix + p.name;
    out.push_back(std::move(full));
  }
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<NamedParameter> Module::named_parameters() const {
  std::vector<NamedParameter> all;
  collect("", all);
  std::vector<NamedParameter> unique;
  std::unordered_set<const TensorImpl*> seen;
  for (auto& p : all)
    if (seen.insert(p.tensor.impl()).second) unique.push_back(std::move(p));
  return unique;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (const auto& p : named_parameters()) out.push_back(p.tensor);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : named_parameters()) n += p.tensor.numel();
  return n;
}

void Module::initialize(uint64_t seed) {
  for (auto& p : named_parameters()) {
    if (p.tensor.device().is_cpu()) {
      meridian::initialize(p.tensor, p.init, seed, p.name, p.shard ? &*p.shard : nullptr);
      continue;
    }
    Tensor host = Tensor::zeros(p.tensor.shape(), p.tensor.dtype());
    meridian::initialize(host, p.init, seed, p.name, p.shard ? &*p.shard : nullptr);
    p.tensor.copy_(host);
  }
}

void Module::to(Device device) {
  for (auto& p : named_parameters()) {
    if (p.tensor.device() == device) continue;
    p.tensor.rebind_storage(std::make_shared<Storage>(p.tensor.nbytes(), device), 0);
    p.tensor.set_grad(Tensor());
  }
}

void Module::assign_parameter_names() {
  for (auto& p : named_parameters()) p.tensor.set_name(p.name);
}

}  // namespace meridian::nn

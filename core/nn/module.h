#pragma once
// Module: a named tree of parameters. Names are hierarchical and stable ("h.3.attn.c_attn.weight")
// because initialisation, checkpoints and sharding all key on them.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/init.h"
#include "core/tensor.h"

namespace meridian::nn {

struct NamedParameter {
  std::string name;  // full dotted name from the root module
  Tensor tensor;
  InitSpec init;
  bool weight_decay = true;       // AdamW decays matrices and embeddings, not biases or norms
  std::optional<ShardSpec> shard; // set when this tensor is one rank's piece of a larger logical one
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Depth-first, in registration order, each parameter once (a tied tensor is listed where it was
  // registered).
  std::vector<NamedParameter> named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;
  // Sets every parameter from (seed, full name, element index): see core/init.h. The values are
  // computed on the host and copied to a parameter's device, so they do not depend on it.
  void initialize(uint64_t seed);
  // Moves every parameter (each tensor once, so tied weights stay tied; every handle to it follows)
  // onto `device`, keeping its values. Gradients are dropped: build the optimizer afterwards.
  void to(Device device);
  // Gives every parameter tensor its full dotted name (for messages and autograd node names).
  // The root module calls it once its tree is built.
  void assign_parameter_names();

 protected:
  // Creates a parameter (requires grad) of `shape`; weight decay defaults to ndim ≥ 2.
  Tensor register_parameter(const std::string& name, const Shape& shape, InitSpec init,
                            std::optional<bool> weight_decay = std::nullopt,
                            std::optional<ShardSpec> shard = std::nullopt);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    children_.emplace_back(name, module);
    return module;
  }

 private:
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const;

  std::vector<NamedParameter> parameters_;  // names local to this module
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace meridian::nn

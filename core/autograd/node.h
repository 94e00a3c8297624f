#pragma once
// The autograd graph. Each recorded function becomes a Node that knows where the gradients of its
// inputs go (edges to the nodes that produced them). Leaves that require grad get a LeafNode,
// shared by every use of that leaf, so the engine knows when the leaf's gradient is final.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace meridian::autograd {

class Node;
class LeafNode;
class GraphTask;

struct TensorMeta {
  Shape shape;
  DType dtype = DType::f32;
  Device device;
  static TensorMeta of(const Tensor& t) { return {t.shape(), t.dtype(), t.device()}; }
};

// Where a gradient flows: output `output_nr` of `node`.
struct Edge {
  std::shared_ptr<Node> node;
  int output_nr = 0;
  bool valid() const { return node != nullptr; }
};

// What a node's backward sees: the gradients of its outputs, and buffers that it accumulates the
// gradients of its inputs into (zero-initialised on first use, or the leaf's .grad itself).
class BackwardContext {
 public:
  BackwardContext(GraphTask& task, Node& node) : task_(task), node_(node) {}
  const Tensor& grad_output(int index = 0) const;  // undefined when no gradient reached it
  bool needs_input_grad(int index) const;
  Tensor input_grad(int index);  // accumulate (+=) into this: storage nothing else holds (or the leaf's .grad)
  // Hands `gradient` over as the whole gradient of input `index`, saving the zero-fill and the
  // read-modify-write of input_grad(), when that is safe: the input is not a leaf, nothing has been
  // accumulated for it yet in this pass, the graph is not retained (so the node's saved tensors,
  // which `gradient` may be, are not used again), and shape, dtype and device match. Returns
  // whether it did; when not, the caller accumulates into input_grad() instead. Later contributions
  // of other consumers add into `gradient` in place, unless something else still holds its storage
  // (the same gradient handed over to another input too, whose consumer has not run yet): then
  // input_grad() gives this input a copy first. So one gradient may be handed to several inputs.
  bool hand_over_input_grad(int index, const Tensor& gradient);
  // Where input `index`'s gradient goes. On cuda, when hand-over would be allowed (above), a fresh
  // uninitialised buffer that becomes the input's gradient, with `overwrite` set: the kernel must
  // write every element instead of adding (no zero-fill, no read of zeros). Otherwise input_grad()'s
  // accumulation buffer with `overwrite` false. The cpu always accumulates (its kernels add).
  struct GradientTarget {
    Tensor tensor;
    bool overwrite = false;
  };
  GradientTarget gradient_target(int index);
  // The leaf node of input `index` when that input is a leaf that requires grad, else null. Its
  // grad_buffer() stays valid after this pass, so a deferred weight gradient (weight_grad_store.h)
  // can add into it later; a non-leaf's gradient must flow on during this pass.
  std::shared_ptr<LeafNode> leaf_input(int index) const;

 private:
  // Input `index`'s gradient slot when a gradient may be placed there whole (a non-leaf input,
  // nothing accumulated yet, graph not retained), with its metadata; null otherwise.
  Tensor* empty_slot(int index, const TensorMeta** meta);

  GraphTask& task_;
  Node& node_;
};

class Node {
 public:
  Node(std::string name, std::vector<Edge> next_edges, std::vector<TensorMeta> outputs);
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  virtual void apply(BackwardContext& ctx) = 0;
  // Drops what the backward saved (called after it ran unless the graph is retained).
  virtual void release_saved() {}
  virtual bool is_leaf() const { return false; }

  const std::string& name() const { return name_; }
  const std::vector<Edge>& next_edges() const { return next_edges_; }
  const TensorMeta& output_meta(int index) const { return outputs_.at(static_cast<size_t>(index)); }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  // Creation order: later nodes run earlier in backward.
  uint64_t sequence_nr() const { return sequence_nr_; }

 private:
  std::string name_;
  std::vector<Edge> next_edges_;
  std::vector<TensorMeta> outputs_;
  uint64_t sequence_nr_;
};

using BackwardFn = std::function<void(BackwardContext&)>;

// A node whose backward is a closure. Closures must not capture their own outputs with history
// (that would be a reference cycle): capture `out.detach()` instead.
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, std::vector<Edge> next_edges, std::vector<TensorMeta> outputs,
               BackwardFn backward)
      : Node(std::move(name), std::move(next_edges), std::move(outputs)), backward_(std::move(backward)) {}
  void apply(BackwardContext& ctx) override;
  void release_saved() override { backward_ = nullptr; }

 private:
  BackwardFn backward_;
};

// The end of the graph for a leaf that requires grad: its gradient goes to the leaf's .grad, and
// when every use has contributed, the leaf's grad-ready hooks fire.
class LeafNode final : public Node {
 public:
  explicit LeafNode(const Tensor& leaf);
  void apply(BackwardContext& ctx) override;
  bool is_leaf() const override { return true; }
  Tensor grad_buffer();  // the leaf's .grad, created as zeros when it has none

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// The edge a tensor's gradient flows along (invalid when it does not require grad).
Edge gradient_edge(const Tensor& tensor);

// Records `backward` as the derivative of `outputs` with respect to `inputs` when grad mode is on
// and any input requires grad; returns whether it did.
bool record(std::string name, const std::vector<Tensor>& inputs, const std::vector<Tensor*>& outputs,
            BackwardFn backward);
inline bool record(std::string name, const std::vector<Tensor>& inputs, Tensor& output,
                   BackwardFn backward) {
  return record(std::move(name), inputs, std::vector<Tensor*>{&output}, std::move(backward));
}

}  // namespace meridian::autograd

#include "core/autograd/engine.h"

#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/gradient_accumulation.h"
#include "core/profiler.h"

namespace meridian::autograd {

namespace {
thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_next_sequence_nr{0};
}  // namespace

bool GradMode::is_enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool enabled) { t_grad_enabled = enabled; }

// The state of one backward pass.
class GraphTask {
 public:
  explicit GraphTask(BackwardOptions task_options) : options(task_options) {}
  BackwardOptions options;
  std::unordered_map<Node*, int> dependencies;
  std::unordered_map<Node*, std::vector<Tensor>> output_grads;

  std::vector<Tensor>& grads_of(Node& node) {
    auto& slots = output_grads[&node];
    if (slots.empty()) slots.resize(static_cast<size_t>(node.num_outputs()));
    return slots;
  }
};

Node::Node(std::string name, std::vector<Edge> next_edges, std::vector<TensorMeta> outputs)
    : name_(std::move(name)),
      next_edges_(std::move(next_edges)),
      outputs_(std::move(outputs)),
      sequence_nr_(g_next_sequence_nr.fetch_add(1)) {}

const Tensor& BackwardContext::grad_output(int index) const {
  static const Tensor kUndefined;
  auto it = task_.output_grads.find(&node_);
  if (it == task_.output_grads.end()) return kUndefined;
  return it->second.at(static_cast<size_t>(index));
}

bool BackwardContext::needs_input_grad(int index) const {
  return node_.next_edges().at(static_cast<size_t>(index)).valid();
}

std::shared_ptr<LeafNode> BackwardContext::leaf_input(int index) const {
  const Edge& edge = node_.next_edges().at(static_cast<size_t>(index));
  if (!edge.valid() || !edge.node->is_leaf()) return nullptr;
  return std::static_pointer_cast<LeafNode>(edge.node);
}

Tensor BackwardContext::input_grad(int index) {
  const Edge& edge = node_.next_edges().at(static_cast<size_t>(index));
  MERIDIAN_CHECK(edge.valid(), node_.name(), ": input ", index, " does not require grad");
  if (edge.node->is_leaf()) return static_cast<LeafNode&>(*edge.node).grad_buffer();
  Tensor& slot = task_.grads_of(*edge.node).at(static_cast<size_t>(edge.output_nr));
  if (!slot.defined()) {
    const TensorMeta& meta = edge.node->output_meta(edge.output_nr);
    slot = Tensor::zeros(meta.shape, meta.dtype, meta.device);
  } else if (slot.storage().use_count() > 1) {
    // One gradient handed over to several inputs (a residual add's) is still theirs in common:
    // this input's contributions go to a copy of its own. Once the others' consumers have run, the
    // slot is the storage's only holder and accumulates in place.
    slot = slot.clone();
  }
  return slot;
}

Tensor* BackwardContext::empty_slot(int index, const TensorMeta** meta) {
  const Edge& edge = node_.next_edges().at(static_cast<size_t>(index));
  if (!edge.valid() || edge.node->is_leaf() || task_.options.retain_graph) return nullptr;
  Tensor& slot = task_.grads_of(*edge.node).at(static_cast<size_t>(edge.output_nr));
  if (slot.defined()) return nullptr;
  *meta = &edge.node->output_meta(edge.output_nr);
  return &slot;
}

bool BackwardContext::hand_over_input_grad(int index, const Tensor& gradient) {
  const TensorMeta* meta = nullptr;
  Tensor* slot = empty_slot(index, &meta);
  if (slot == nullptr || !gradient.defined() || gradient.shape() != meta->shape || gradient.dtype() != meta->dtype ||
      gradient.device() != meta->device || !gradient.is_contiguous())
    return false;
  *slot = gradient.detach();
  return true;
}

BackwardContext::GradientTarget BackwardContext::gradient_target(int index) {
  const TensorMeta* meta = nullptr;
  Tensor* slot = empty_slot(index, &meta);
  if (slot != nullptr && meta->device.is_cuda()) {
    *slot = Tensor::empty(meta->shape, meta->dtype, meta->device);
    return {*slot, true};
  }
  return {input_grad(index), false};  // checks that the input requires grad
}

void FunctionNode::apply(BackwardContext& ctx) {
  if (!backward_)
    MERIDIAN_FAIL("backward through '", name(),
                  "' a second time: its saved tensors were freed (pass retain_graph=true)");
  backward_(ctx);
}

LeafNode::LeafNode(const Tensor& leaf)
    : Node("leaf:" + leaf.name(), {}, {TensorMeta::of(leaf)}), leaf_(leaf.impl_ptr()) {}

Tensor LeafNode::grad_buffer() {
  Tensor& grad = leaf_->autograd.grad;
  if (!grad.defined()) {
    const TensorMeta& meta = output_meta(0);
    if (leaf_->autograd.grad_factory) {
      Tensor made = leaf_->autograd.grad_factory();
      // The factory may have set .grad itself (a whole bucket at once); either way it must fit.
      Tensor(leaf_).set_grad(made);
    } else {
      grad = Tensor::zeros(meta.shape, meta.dtype, meta.device);
    }
  }
  return grad;
}

void LeafNode::apply(BackwardContext&) {
  // The gradient already sits in .grad (consumers accumulated into it); it is now final.
  Tensor leaf(leaf_);
  for (const auto& hook : leaf_->autograd.grad_ready_hooks) hook(leaf);
}

Edge gradient_edge(const Tensor& tensor) {
  if (!tensor.defined() || !tensor.requires_grad()) return {};
  if (tensor.grad_fn()) return {tensor.grad_fn(), tensor.output_nr()};
  auto& meta = tensor.impl()->autograd;
  std::shared_ptr<Node> leaf = meta.leaf_node.lock();
  if (!leaf) {
    leaf = std::make_shared<LeafNode>(tensor);
    meta.leaf_node = leaf;
  }
  return {leaf, 0};
}

bool record(std::string name, const std::vector<Tensor>& inputs, const std::vector<Tensor*>& outputs,
            BackwardFn backward) {
  if (!GradMode::is_enabled()) return false;
  bool any_requires_grad = false;
  for (const Tensor& input : inputs) any_requires_grad |= input.defined() && input.requires_grad();
  if (!any_requires_grad) return false;

  std::vector<Edge> edges;
  edges.reserve(inputs.size());
  for (const Tensor& input : inputs) edges.push_back(gradient_edge(input));
  std::vector<TensorMeta> metas;
  metas.reserve(outputs.size());
  for (const Tensor* output : outputs) metas.push_back(TensorMeta::of(*output));
  auto node = std::make_shared<FunctionNode>(std::move(name), std::move(edges), std::move(metas),
                                             std::move(backward));
  for (size_t i = 0; i < outputs.size(); ++i) outputs[i]->set_history(node, static_cast<int>(i));
  return true;
}

namespace {

void count_dependencies(Node* root, GraphTask& task) {
  std::vector<Node*> stack{root};
  std::unordered_set<Node*> seen{root};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& edge : node->next_edges()) {
      if (!edge.valid()) continue;
      ++task.dependencies[edge.node.get()];
      if (seen.insert(edge.node.get()).second) stack.push_back(edge.node.get());
    }
  }
}

// Leaves first (their hooks start communication as early as possible), then later-created nodes.
struct ReadyOrder {
  bool operator()(const Node* a, const Node* b) const {
    if (a->is_leaf() != b->is_leaf()) return b->is_leaf();
    return a->sequence_nr() < b->sequence_nr();
  }
};

}  // namespace

void run_backward(const Tensor& root, const Tensor& gradient, BackwardOptions options) {
  MERIDIAN_CHECK(root.defined(), "backward on an undefined tensor");
  if (!root.requires_grad())
    MERIDIAN_FAIL("backward: the tensor does not require grad and has no grad_fn");
  Tensor seed = gradient;
  if (!seed.defined()) {
    if (root.numel() != 1)
      MERIDIAN_FAIL("backward: a gradient can be implied only for one-element outputs, got shape ",
                    shape_str(root.shape()));
    seed = Tensor::full(root.shape(), 1.0, root.dtype()).to(root.device());  // the same tensor on cpu
  } else if (seed.shape() != root.shape() || seed.dtype() != root.dtype()) {
    MERIDIAN_FAIL("backward: gradient of shape ", shape_str(seed.shape()), " ", dtype_name(seed.dtype()),
                  " for an output of shape ", shape_str(root.shape()), " ", dtype_name(root.dtype()));
  } else if (seed.device() != root.device()) {
    MERIDIAN_FAIL("backward: gradient on ", seed.device().to_string(), " for an output on ",
                  root.device().to_string());
  }

  NoGradGuard no_grad;
  GraphTask task(options);
  Edge root_edge = gradient_edge(root);
  Node* root_node = root_edge.node.get();
  if (root_node->is_leaf()) {
    // Backward from a leaf: its gradient is the seed (in the leaf's dtype, f32 or bf16).
    const Tensor grad = static_cast<LeafNode*>(root_node)->grad_buffer();
    MERIDIAN_CHECK(grad.is_contiguous(), "backward from a leaf needs a dense .grad");
    if (grad.device().is_cuda()) MERIDIAN_CHECK(seed.is_contiguous(), "backward from a cuda leaf needs a contiguous gradient");
    ::meridian::detail::accumulate_gradient(grad, seed.contiguous());
  } else {
    task.grads_of(*root_node)[static_cast<size_t>(root_edge.output_nr)] = seed.clone();
  }
  count_dependencies(root_node, task);

  std::priority_queue<Node*, std::vector<Node*>, ReadyOrder> ready;
  ready.push(root_node);
  while (!ready.empty()) {
    Node* node = ready.top();
    ready.pop();
    if (node->is_leaf()) {
      if (task.options.fire_hooks) {
        BackwardContext ctx(task, *node);
        node->apply(ctx);
      }
    } else {
      profiler::Scope scope(node->name(), "backward");
      BackwardContext ctx(task, *node);
      node->apply(ctx);
    }
    task.output_grads.erase(node);
    if (!task.options.retain_graph) node->release_saved();
    for (const Edge& edge : node->next_edges()) {
      if (!edge.valid()) continue;
      if (--task.dependencies[edge.node.get()] == 0) ready.push(edge.node.get());
    }
  }
}

}  // namespace meridian::autograd

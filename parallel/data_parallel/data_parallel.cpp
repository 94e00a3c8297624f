#include "parallel/data_parallel/data_parallel.h"

#include <algorithm>
#include <cmath>

#include "core/gradient_accumulation.h"
#include "core/optim/optimizer.h"
#include "core/profiler.h"
#include "ops/cpu/optimizer.h"

namespace meridian::parallel {

struct DataParallel::State {
  std::shared_ptr<comm::Communicator> group;
  DataParallelOptions options;
  // Where the parameters, and so the buckets, live. On a GPU the group is an NCCL communicator:
  // its collectives run on its own stream, ordered by events against the compute stream
  // (nccl_communicator.h), so the bucket all-reduces overlap the rest of backward.
  Device device = Device::cpu();
  int shards = 1;
  int rank = 0;
  std::vector<Bucket> buckets;
  std::vector<Tensor> flat_grads;   // per bucket; stage 2: only while the bucket is in flight
  std::vector<Tensor> shard_grads;  // stage 2: this rank's accumulated chunk of each bucket
  std::vector<int> pending;         // parameters of each bucket whose gradient is not final yet
  std::vector<comm::WorkHandle> handles;
  std::vector<bool> launched;
  std::vector<bool> settled;  // stage 2: chunk accumulated and the bucket's buffer released
  size_t next_to_launch = 0;
  bool reducing = false;
  std::vector<optim::OptimizerParam> optimizer_params;

  int64_t chunk(size_t b) const { return buckets[b].shard_numel(shards); }
  bool tensor_parallel() const {
    return options.tensor_parallel_group != nullptr && options.tensor_parallel_group->size() > 1;
  }
  Tensor chunk_of(const Tensor& flat, size_t b) const { return flat.narrow(0, rank * chunk(b), chunk(b)); }

  // Points every parameter's .grad of bucket b at its slice of the bucket's gradient buffer.
  void attach_grads(size_t b) {
    for (BucketSlot& slot : buckets[b].slots)
      slot.param.set_grad(flat_grads[b].narrow(0, slot.offset, slot.numel).view(slot.param.shape()));
  }

  void ensure_bucket_grads(size_t b) {
    if (flat_grads[b].defined()) return;
    flat_grads[b] = Tensor::zeros({buckets[b].padded_numel}, DType::f32, device);
    attach_grads(b);
  }

  // Starts a micro-step: `reduce` says whether its gradients are reduced (from the hooks, and by
  // end_micro_step for buckets no hook launched).
  void arm(bool reduce) {
    reducing = reduce;
    next_to_launch = 0;
    for (size_t b = 0; b < buckets.size(); ++b) {
      pending[b] = static_cast<int>(buckets[b].slots.size());
      launched[b] = false;
      settled[b] = false;
    }
  }

  void on_grad_ready(size_t b) {
    if (!reducing) return;
    if (--pending[b] > 0) return;
    while (next_to_launch < buckets.size() && pending[next_to_launch] == 0) launch(next_to_launch++);
    if (options.zero_stage == 2) settle_completed();
  }

  // Sequence parallelism: sums the partial gradients of bucket b's replicated parameters over the
  // tp group (one all-reduce per bucket; every tp rank has the same buckets, reduced in the same order).
  void sum_sequence_parallel_grads(size_t b) {
    std::vector<const BucketSlot*> replicated;
    int64_t numel = 0;
    for (const BucketSlot& slot : buckets[b].slots) {
      if (slot.tensor_parallel_shard) continue;
      replicated.push_back(&slot);
      numel += slot.numel;
    }
    if (numel == 0) return;
    // On the buckets' device (cuda: device copies, and the tp group is NCCL there).
    Tensor staging = Tensor::empty({numel}, DType::f32, device);
    const Tensor& grads = flat_grads[b];
    int64_t at = 0;
    for (const BucketSlot* slot : replicated) {
      staging.slice(at, at + slot->numel).copy_(grads.slice(slot->offset, slot->offset + slot->numel));
      at += slot->numel;
    }
    {
      profiler::Scope scope("tp.all_reduce", "sequence_parallel_grads");
      options.tensor_parallel_group->all_reduce(staging, comm::ReduceOp::sum)->wait();
    }
    at = 0;
    for (const BucketSlot* slot : replicated) {
      grads.slice(slot->offset, slot->offset + slot->numel).copy_(staging.slice(at, at + slot->numel));
      at += slot->numel;
    }
  }

  void launch(size_t b) {
    profiler::Scope scope("dp.launch");
    launched[b] = true;
    if (options.sequence_parallel && tensor_parallel()) sum_sequence_parallel_grads(b);
    if (!options.communicate) return;
    if (options.zero_stage == 0) {
      handles[b] = group->all_reduce(flat_grads[b], comm::ReduceOp::avg);
    } else {
      Tensor mine = chunk_of(flat_grads[b], b);
      handles[b] = group->reduce_scatter(flat_grads[b], mine, comm::ReduceOp::avg);
    }
  }

  // Stage 2: adds this rank's reduced chunk to its shard and lets the bucket's buffer go.
  void settle(size_t b) {
    if (handles[b]) handles[b]->wait();
    handles[b].reset();
    ::meridian::detail::accumulate_gradient(shard_grads[b], chunk_of(flat_grads[b], b));
    for (BucketSlot& slot : buckets[b].slots) slot.param.set_grad(Tensor());
    flat_grads[b] = Tensor();
    settled[b] = true;
  }

  void settle_completed() {
    for (size_t b = 0; b < next_to_launch; ++b)
      if (!settled[b] && (!handles[b] || handles[b]->is_completed())) settle(b);
  }
};

DataParallel::DataParallel(const std::vector<nn::NamedParameter>& parameters,
                           std::shared_ptr<comm::Communicator> group, DataParallelOptions options)
    : state_(std::make_shared<State>()) {
  State& s = *state_;
  if (options.zero_stage < 0 || options.zero_stage > 2)
    MERIDIAN_FAIL("data parallel: ZeRO stage ", options.zero_stage, " (expected 0, 1 or 2)");
  MERIDIAN_CHECK(group != nullptr, "data parallel needs a group");
  s.group = std::move(group);
  s.options = options;
  s.shards = s.options.zero_stage == 0 ? 1 : s.group->size();
  s.rank = s.group->rank();
  s.buckets = build_buckets(parameters, s.options.bucket_bytes, s.shards, s.options.own_bucket);
  const size_t n = s.buckets.size();
  if (n > 0) s.device = s.buckets.front().flat_params.device();
  for (const Bucket& bucket : s.buckets)
    if (bucket.flat_params.device() != s.device)
      MERIDIAN_FAIL("data parallel: parameters on ", s.device.to_string(), " and ", bucket.flat_params.device().to_string(),
                    " (every parameter must live on one device)");
  s.flat_grads.resize(n);
  s.shard_grads.resize(n);
  s.pending.assign(n, 0);
  s.handles.resize(n);
  s.launched.assign(n, false);
  s.settled.assign(n, false);

  std::weak_ptr<State> weak = state_;
  for (size_t b = 0; b < n; ++b) {
    if (s.options.zero_stage == 2) {
      s.shard_grads[b] = Tensor::zeros({s.chunk(b)}, DType::f32, s.device);
      for (BucketSlot& slot : s.buckets[b].slots) {
        slot.param.set_grad(Tensor());
        slot.param.set_grad_factory([weak, b, &slot]() -> Tensor {
          auto state = weak.lock();
          MERIDIAN_CHECK(state != nullptr, "gradient for '", slot.name, "' after its DataParallel was destroyed");
          state->ensure_bucket_grads(b);
          return slot.param.grad();
        });
      }
    } else {
      s.flat_grads[b] = Tensor::zeros({s.buckets[b].padded_numel}, DType::f32, s.device);
      s.attach_grads(b);
    }
    for (BucketSlot& slot : s.buckets[b].slots)
      slot.param.register_grad_ready_hook([weak, b](const Tensor&) {
        if (auto state = weak.lock()) state->on_grad_ready(b);
      });
  }

  for (size_t b = 0; b < n; ++b) {
    const Bucket& bucket = s.buckets[b];
    if (s.options.zero_stage == 0) {
      for (const BucketSlot& slot : bucket.slots) s.optimizer_params.push_back({slot.name, slot.param, slot.weight_decay});
      continue;
    }
    const int64_t lo = s.rank * s.chunk(b), hi = lo + s.chunk(b);
    for (const BucketSlot& slot : bucket.slots) {
      const int64_t begin = std::max(lo, slot.offset), end = std::min(hi, slot.offset + slot.numel);
      if (begin >= end) continue;
      Tensor piece = Tensor::from_storage(bucket.flat_params.storage(), {end - begin}, DType::f32, begin);
      piece.set_name(slot.name + "[" + std::to_string(begin - slot.offset) + ":" + std::to_string(end - slot.offset) + "]");
      piece.set_grad(s.options.zero_stage == 1
                         ? Tensor::from_storage(s.flat_grads[b].storage(), {end - begin}, DType::f32, begin)
                         : Tensor::from_storage(s.shard_grads[b].storage(), {end - begin}, DType::f32, begin - lo));
      s.optimizer_params.push_back({piece.name(), piece, slot.weight_decay});
    }
  }
}

DataParallel::~DataParallel() {
  for (Bucket& bucket : state_->buckets)
    for (BucketSlot& slot : bucket.slots) slot.param.set_grad_factory(nullptr);
}

const std::vector<optim::OptimizerParam>& DataParallel::optimizer_params() const { return state_->optimizer_params; }
int DataParallel::zero_stage() const { return state_->options.zero_stage; }
const std::vector<Bucket>& DataParallel::buckets() const { return state_->buckets; }
int DataParallel::buckets_launched() const { return static_cast<int>(state_->next_to_launch); }

void DataParallel::zero_grad() {
  State& s = *state_;
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    if (s.flat_grads[b].defined()) s.flat_grads[b].zero_();
    if (s.shard_grads[b].defined()) s.shard_grads[b].zero_();
  }
}

void DataParallel::begin_micro_step(bool last) {
  State& s = *state_;
  s.arm(s.options.launch_from_hooks && (last || s.options.zero_stage == 2));
}

void DataParallel::end_micro_step() {
  State& s = *state_;
  if (!s.reducing) return;
  profiler::Scope scope("dp.wait");
  // Buckets whose parameters got no gradient in this pass are reduced too (as zeros), in order.
  while (s.next_to_launch < s.buckets.size()) {
    if (s.options.zero_stage == 2) s.ensure_bucket_grads(s.next_to_launch);
    s.launch(s.next_to_launch++);
  }
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    if (s.options.zero_stage == 2) {
      if (!s.settled[b]) s.settle(b);
    } else if (s.handles[b]) {
      s.handles[b]->wait();
      s.handles[b].reset();
    }
  }
  s.reducing = false;
}

void DataParallel::reduce_gradients() {
  State& s = *state_;
  MERIDIAN_CHECK(!s.options.launch_from_hooks, "reduce_gradients() is for launch_from_hooks = false");
  s.arm(true);
  end_micro_step();
}

Tensor DataParallel::owned_gradient(const std::string& name) {
  State& s = *state_;
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    const Bucket& bucket = s.buckets[b];
    if (bucket.slots.size() != 1 || bucket.slots.front().name != name) continue;
    if (s.options.zero_stage == 0) return bucket.slots.front().param.grad();
    return s.options.zero_stage == 1 ? s.chunk_of(s.flat_grads[b], b) : s.shard_grads[b];
  }
  MERIDIAN_FAIL("data parallel: '", name, "' has no bucket of its own (list it in DataParallelOptions::own_bucket)");
}

namespace {

// Where a collective over `group` takes its tensors: the device for NCCL, else the host.
Device collective_device(const comm::Communicator& group, Device device) {
  return group.backend() == "nccl" ? device : Device::cpu();
}

}  // namespace

double DataParallel::grad_norm() {
  State& s = *state_;
  if (s.tensor_parallel()) return tensor_parallel_grad_norm();
  std::vector<Tensor> owned;
  for (size_t b = 0; b < s.buckets.size(); ++b)
    owned.push_back(s.options.zero_stage == 0   ? s.flat_grads[b]
                    : s.options.zero_stage == 1 ? s.chunk_of(s.flat_grads[b], b)
                                                : s.shard_grads[b]);
  double sum = 0.0;
  if (s.device.is_cuda()) {
    const double norm = optim::global_grad_norm(owned);  // Σ g² in double on the device
    sum = norm * norm;
  } else {
    for (const Tensor& t : owned) sum += ops::cpu::sum_of_squares(t.data<float>(), t.numel());
  }
  if (s.options.zero_stage > 0 && s.options.communicate) {
    // The collective runs where the group's backend does.
    Tensor total = Tensor::full({1}, sum).to(collective_device(*s.group, s.device));
    s.group->all_reduce(total, comm::ReduceOp::sum)->wait();
    sum = total.item<double>();
  }
  return std::sqrt(sum);
}

double DataParallel::tensor_parallel_grad_norm() {
  State& s = *state_;
  // Squares of tp pieces (index 0) and of replicated parameters (index 1) over what this rank owns.
  double sums[2] = {0.0, 0.0};
  std::vector<Tensor> on_device[2];  // cuda: the owned spans, summed on the device below
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    const int64_t lo = s.options.zero_stage == 0 ? 0 : s.rank * s.chunk(b);
    const int64_t hi = s.options.zero_stage == 0 ? s.buckets[b].numel : lo + s.chunk(b);
    for (const BucketSlot& slot : s.buckets[b].slots) {
      const int64_t begin = std::max(lo, slot.offset), end = std::min(hi, slot.offset + slot.numel);
      if (begin >= end) continue;
      const Tensor span = s.options.zero_stage == 2 ? s.shard_grads[b].slice(begin - lo, end - lo)
                                                    : s.flat_grads[b].slice(begin, end);
      const int kind = slot.tensor_parallel_shard ? 0 : 1;
      if (s.device.is_cuda())
        on_device[kind].push_back(span);
      else
        sums[kind] += ops::cpu::sum_of_squares(span.data<float>(), span.numel());
    }
  }
  if (s.device.is_cuda()) {
    for (int kind = 0; kind < 2; ++kind) {
      const double norm = optim::global_grad_norm(on_device[kind]);  // Σ g² in double on the device
      sums[kind] = norm * norm;
    }
  }
  if (s.options.zero_stage > 0 && s.options.communicate) {
    Tensor owned = Tensor::from_vector<float>({static_cast<float>(sums[0]), static_cast<float>(sums[1])}, {2})
                       .to(collective_device(*s.group, s.device));
    s.group->all_reduce(owned, comm::ReduceOp::sum)->wait();
    const Tensor host = owned.to(Device::cpu());
    sums[0] = host.data<float>()[0];
    sums[1] = host.data<float>()[1];
  }
  comm::Communicator& tp = *s.options.tensor_parallel_group;
  Tensor pieces = Tensor::full({1}, sums[0]).to(collective_device(tp, s.device));
  tp.all_reduce(pieces, comm::ReduceOp::sum)->wait();
  return std::sqrt(static_cast<double>(pieces.item<float>()) + sums[1]);
}

void DataParallel::after_optimizer_step() {
  State& s = *state_;
  if (s.options.zero_stage == 0 || !s.options.communicate) return;
  profiler::Scope scope("dp.all_gather");
  std::vector<comm::WorkHandle> gathers;
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    Tensor mine = s.chunk_of(s.buckets[b].flat_params, b);
    gathers.push_back(s.group->all_gather(mine, s.buckets[b].flat_params));
  }
  for (auto& handle : gathers) handle->wait();
}

DataParallelMemory DataParallel::memory() const {
  const State& s = *state_;
  DataParallelMemory m;
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    m.parameter_bytes += static_cast<size_t>(s.buckets[b].padded_numel) * sizeof(float);
    if (s.options.zero_stage < 2) m.gradient_bytes += static_cast<size_t>(s.buckets[b].padded_numel) * sizeof(float);
    if (s.shard_grads[b].defined()) m.gradient_shard_bytes += s.shard_grads[b].nbytes();
  }
  return m;
}

}  // namespace meridian::parallel

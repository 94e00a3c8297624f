#include "parallel/pipeline/stage_transfers.h"

#include "core/error.h"
#include "core/profiler.h"

namespace meridian::parallel {

namespace {

enum Direction : int { activation = 0, gradient = 1 };

bool is_backward(PassKind pass) { return pass == PassKind::backward || pass == PassKind::backward_input; }

std::tuple<int, int, int> key_of(const PipelineAction& action) {
  // B and a whole backward take the same input: the gradient of the stage's output.
  const PassKind pass = is_backward(action.pass) ? PassKind::backward : action.pass;
  return {static_cast<int>(pass), action.chunk, action.micro_batch};
}

}  // namespace

StageTransfers::StageTransfers(comm::Communicator& pp_group, const ScheduleShape& shape, Shape activation_shape,
                               DType activation_dtype, Timeline& timeline)
    : group_(pp_group),
      shape_(shape),
      activation_shape_(std::move(activation_shape)),
      activation_dtype_(activation_dtype),
      timeline_(timeline),
      rank_(pp_group.rank()) {
  MERIDIAN_CHECK(group_.size() == shape_.pipeline_size, "stage transfers: pp group of ", group_.size(),
                 " ranks for pp ", shape_.pipeline_size);
  // 32767 is the smallest tag bound MPI allows.
  const int64_t largest_tag = (static_cast<int64_t>(shape_.micro_batches) * shape_.virtual_stages) * 2 + 1;
  if (largest_tag > 32767)
    MERIDIAN_FAIL("pipeline: ", shape_.micro_batches, " micro-batches x ", shape_.virtual_stages,
                  " virtual stages need more than the 32767 message tags MPI guarantees");
}

int StageTransfers::stage_of(const PipelineAction& action) const {
  return action.chunk * shape_.pipeline_size + rank_;
}

bool StageTransfers::receives_input(const PipelineAction& action) const {
  const int stage = stage_of(action);
  if (action.pass == PassKind::forward) return stage > 0;
  return is_backward(action.pass) && stage < shape_.stages() - 1;
}

// The tag names the receiving stage's chunk, so sender and receiver compute the same number.
StageTransfers::Route StageTransfers::input_route(const PipelineAction& action) const {
  const int p = shape_.pipeline_size, V = shape_.virtual_stages;
  const bool forward = action.pass == PassKind::forward;
  const int peer = forward ? (rank_ + p - 1) % p : (rank_ + 1) % p;
  return {peer, (action.micro_batch * V + action.chunk) * 2 + (forward ? activation : gradient)};
}

StageTransfers::Route StageTransfers::output_route(const PipelineAction& action) const {
  const int p = shape_.pipeline_size, V = shape_.virtual_stages;
  const bool forward = action.pass == PassKind::forward;
  const int target_stage = stage_of(action) + (forward ? 1 : -1);
  const int target_chunk = target_stage / p;
  const int peer = target_stage % p;
  return {peer, (action.micro_batch * V + target_chunk) * 2 + (forward ? activation : gradient)};
}

void StageTransfers::post_receive(const PipelineAction& action) {
  if (!receives_input(action)) return;
  const auto key = key_of(action);
  if (receives_.count(key)) return;
  const Route route = input_route(action);
  PendingReceive pending{Tensor::empty(activation_shape_, activation_dtype_), nullptr};
  pending.handle = group_.recv(pending.buffer, route.peer, route.tag);
  receives_.emplace(key, std::move(pending));
}

Tensor StageTransfers::take_input(const PipelineAction& action) {
  MERIDIAN_CHECK(receives_input(action), "pipeline: ", to_string(action), " has no input to receive");
  post_receive(action);
  auto it = receives_.find(key_of(action));
  PendingReceive pending = std::move(it->second);
  receives_.erase(it);
  const int64_t start = Timeline::now_ns();
  {
    profiler::Scope scope("pipeline.wait_recv");
    pending.handle->wait();
  }
  const Route route = input_route(action);
  const bool forward = action.pass == PassKind::forward;
  timeline_.record(std::string("recv ") + (forward ? "activation " : "gradient ") + to_string(action),
                   TimelineCategory::recv, TimelineTrack::communication, start, Timeline::now_ns(),
                   {{"peer", route.peer}, {"micro_batch", action.micro_batch}, {"chunk", action.chunk},
                    {"bytes", pending.buffer.nbytes()}});
  return pending.buffer;
}

void StageTransfers::send_output(const PipelineAction& action, const Tensor& tensor) {
  const int stage = stage_of(action);
  const bool forward = action.pass == PassKind::forward;
  if (forward ? stage == shape_.stages() - 1 : stage == 0) return;
  if (tensor.shape() != activation_shape_)
    MERIDIAN_FAIL("pipeline: stage ", stage, " produced shape ", shape_str(tensor.shape()), " for ",
                  to_string(action), " but stages exchange ", shape_str(activation_shape_));
  if (tensor.dtype() != activation_dtype_)
    MERIDIAN_FAIL("pipeline: stage ", stage, " produced ", dtype_name(tensor.dtype()), " for ", to_string(action),
                  " but stages exchange ", dtype_name(activation_dtype_));
  MERIDIAN_CHECK(tensor.is_contiguous(), "pipeline: ", to_string(action), " output must be contiguous");
  const Route route = output_route(action);
  const int64_t start = Timeline::now_ns();
  release_completed_sends();
  sends_.push_back(group_.send(tensor, route.peer, route.tag));
  timeline_.record(std::string("send ") + (forward ? "activation " : "gradient ") + to_string(action),
                   TimelineCategory::send, TimelineTrack::communication, start, Timeline::now_ns(),
                   {{"peer", route.peer}, {"micro_batch", action.micro_batch}, {"chunk", action.chunk},
                    {"bytes", tensor.nbytes()}});
}

void StageTransfers::release_completed_sends() {
  std::erase_if(sends_, [](const comm::WorkHandle& handle) {
    if (!handle->is_completed()) return false;
    handle->wait();  // returns at once; throws if the send failed
    return true;
  });
}

void StageTransfers::wait_for_sends() {
  profiler::Scope scope("pipeline.wait_sends");
  for (auto& handle : sends_) handle->wait();
  sends_.clear();
}

}  // namespace meridian::parallel


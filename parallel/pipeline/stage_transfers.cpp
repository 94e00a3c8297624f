#include "parallel/pipeline/stage_transfers.h"

#include "core/error.h"
#include "core/profiler.h"

namespace meridian::parallel {

namespace {

// In a link's communicator the sender is rank 0 and the receiver rank 1; one tag for the link.
constexpr int kLinkSender = 0, kLinkReceiver = 1, kLinkTag = 0;

std::tuple<int, int, int> key_of(const StageMessage& message) {
  return {static_cast<int>(message.pass), message.chunk, message.micro_batch};
}

}  // namespace

StageTransfers::StageTransfers(comm::Communicator& pp_group, StageTransferOptions options, Timeline& timeline)
    : options_(std::move(options)), timeline_(timeline), rank_(pp_group.rank()) {
  MERIDIAN_CHECK(pp_group.size() == options_.shape.pipeline_size, "stage transfers: pp group of ", pp_group.size(),
                 " ranks for pp ", options_.shape.pipeline_size);
  const std::vector<StageLink> links = pipeline_links(options_.schedule, options_.shape);
  // Every pp rank splits every link (a collective over the group), then the two members of each
  // turn it into the tensors' group, all in the links' order, so that bootstraps that block until
  // both members arrive (NCCL) are reached in the same order everywhere.
  std::vector<std::shared_ptr<comm::Communicator>> host_links;
  for (const StageLink& link : links) {
    const bool member = rank_ == link.sender || rank_ == link.receiver;
    host_links.push_back(pp_group.split(member ? 0 : -1, rank_ == link.sender ? kLinkSender : kLinkReceiver,
                                        "pp-link " + std::to_string(link.sender) + ">" + std::to_string(link.receiver)));
  }
  for (size_t i = 0; i < links.size(); ++i) {
    if (host_links[i] == nullptr) continue;
    std::shared_ptr<comm::Communicator> group = comm::tensor_group(options_.tensor_groups, host_links[i]);
    if (links[i].sender == rank_)
      outgoing_[links[i].receiver] = std::move(group);
    else
      incoming_[links[i].sender] = Incoming{std::move(group), links[i].messages, 0};
  }
}

void StageTransfers::post_receive(const PipelineAction& action) {
  StageMessage wanted{};
  int sender = 0;
  if (!consumed_message(action, options_.shape, rank_, wanted, sender)) return;
  if (receives_.count(key_of(wanted))) return;
  auto link = incoming_.find(sender);
  MERIDIAN_CHECK(link != incoming_.end(), "pipeline: ", to_string(action), " on pp rank ", rank_,
                 " needs data from pp rank ", sender, ", which the schedule never sends to it");
  Incoming& in = link->second;
  // The link delivers in the sender's order; every schedule consumes each link's messages in that
  // order too (pipeline_links checks it), so this receive is the link's next message.
  MERIDIAN_CHECK(in.posted < in.messages.size() && in.messages[in.posted] == wanted, "pipeline: ", to_string(action),
                 " on pp rank ", rank_, " is not the next message pp rank ", sender, " sends it");
  PendingReceive pending{Tensor::empty(options_.activation_shape, options_.activation_dtype, options_.device),
                         nullptr};
  pending.handle = in.group->recv(pending.buffer, kLinkSender, kLinkTag);
  receives_.emplace(key_of(wanted), std::move(pending));
  ++in.posted;
}

Tensor StageTransfers::take_input(const PipelineAction& action) {
  StageMessage wanted{};
  int sender = 0;
  MERIDIAN_CHECK(consumed_message(action, options_.shape, rank_, wanted, sender), "pipeline: ", to_string(action),
                 " has no input to receive");
  post_receive(action);
  auto it = receives_.find(key_of(wanted));
  MERIDIAN_CHECK(it != receives_.end(), "pipeline: the input of ", to_string(action), " was received already");
  PendingReceive pending = std::move(it->second);
  receives_.erase(it);
  const int64_t start = timeline_.now();
  {
    profiler::Scope scope("pipeline.wait_recv");
    pending.handle->wait();
  }
  const bool forward = action.pass == PassKind::forward;
  timeline_.record(std::string("recv ") + (forward ? "activation " : "gradient ") + to_string(action),
                   TimelineCategory::recv, TimelineTrack::communication, start, timeline_.now(),
                   {{"peer", sender}, {"micro_batch", action.micro_batch}, {"chunk", action.chunk},
                    {"bytes", pending.buffer.nbytes()}});
  return pending.buffer;
}

void StageTransfers::send_output(const PipelineAction& action, const Tensor& tensor) {
  StageMessage message{};
  int peer = 0;
  if (!produced_message(action, options_.shape, rank_, message, peer)) return;
  const int stage = action.chunk * options_.shape.pipeline_size + rank_;
  const bool forward = action.pass == PassKind::forward;
  if (tensor.shape() != options_.activation_shape)
    MERIDIAN_FAIL("pipeline: stage ", stage, " produced shape ", shape_str(tensor.shape()), " for ",
                  to_string(action), " but stages exchange ", shape_str(options_.activation_shape));
  if (tensor.dtype() != options_.activation_dtype)
    MERIDIAN_FAIL("pipeline: stage ", stage, " produced ", dtype_name(tensor.dtype()), " for ", to_string(action),
                  " but stages exchange ", dtype_name(options_.activation_dtype));
  if (tensor.device() != options_.device)
    MERIDIAN_FAIL("pipeline: stage ", stage, " produced a tensor on ", tensor.device().to_string(), " for ",
                  to_string(action), " but stages exchange tensors on ", options_.device.to_string());
  MERIDIAN_CHECK(tensor.is_contiguous(), "pipeline: ", to_string(action), " output must be contiguous");
  auto link = outgoing_.find(peer);
  MERIDIAN_CHECK(link != outgoing_.end(), "pipeline: ", to_string(action), " on pp rank ", rank_,
                 " sends to pp rank ", peer, ", which the schedule's links do not include");
  const int64_t start = timeline_.now();
  release_completed_sends();
  sends_.push_back(link->second->send(tensor, kLinkReceiver, kLinkTag));
  timeline_.record(std::string("send ") + (forward ? "activation " : "gradient ") + to_string(action),
                   TimelineCategory::send, TimelineTrack::communication, start, timeline_.now(),
                   {{"peer", peer}, {"micro_batch", action.micro_batch}, {"chunk", action.chunk},
                    {"bytes", tensor.nbytes()}});
}

void StageTransfers::release_completed_sends() {
  std::erase_if(sends_, [](const comm::WorkHandle& handle) {
    if (!handle->is_completed()) return false;
    handle->wait();  // returns at once; throws if the send failed
    return true;
  });
}

void StageTransfers::end_step() {
  MERIDIAN_CHECK(receives_.empty(), "pipeline: ", receives_.size(), " received inputs were never taken");
  for (auto& [sender, in] : incoming_) {
    MERIDIAN_CHECK(in.posted == in.messages.size(), "pipeline: pp rank ", rank_, " received ", in.posted, " of the ",
                   in.messages.size(), " messages pp rank ", sender, " sent this step");
    in.posted = 0;
  }
}

void StageTransfers::wait_for_sends() {
  profiler::Scope scope("pipeline.wait_sends");
  for (auto& handle : sends_) handle->wait();
  sends_.clear();
}

}  // namespace meridian::parallel

#include "parallel/comm/nccl_communicator.h"

#include <nccl.h>

#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "parallel/comm/collective_checks.h"
#include "parallel/comm/nccl_check.h"
#include "parallel/comm/world_rank.h"

namespace meridian::comm {
namespace {

// Makes `device` current for the calling thread for the scope (threads start on device 0).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    MERIDIAN_COMM_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) MERIDIAN_COMM_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() {
    if (cudaSetDevice(previous_) != cudaSuccess) cudaGetLastError();
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Cleanup cannot throw (destructors); a failure is still reported, with the rank.
void report_cleanup_failure(const char* call, const char* what) {
  std::fprintf(stderr, "rank %d: warning: %s failed during NCCL communicator cleanup: %s\n",
               world_rank_for_messages(), call, what);
}

ncclDataType_t nccl_reduce_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return ncclFloat32;
    case DType::bf16:
      return ncclBfloat16;
    case DType::f16:
      return ncclFloat16;
    case DType::i32:
      return ncclInt32;
    case DType::u16:
      break;
  }
  MERIDIAN_FAIL("no NCCL reduction for dtype ", dtype_name(dtype));
}

ncclRedOp_t nccl_reduce_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::avg:
      return ncclAvg;
    case ReduceOp::max:
      return ncclMax;
  }
  MERIDIAN_FAIL("no NCCL reduction for op ", reduce_op_name(op));
}

// Work whose completion is a CUDA event on the comm stream.
class NcclWork final : public Work {
 public:
  NcclWork(WorkInfo info, int device, ncclComm_t comm, std::shared_ptr<const std::atomic<bool>> comm_alive,
           cudaStream_t compute_stream, std::vector<Tensor> buffers)
      : Work(std::move(info)),
        device_(device),
        comm_(comm),
        comm_alive_(std::move(comm_alive)),
        compute_stream_(compute_stream),
        buffers_(std::move(buffers)) {
    MERIDIAN_COMM_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  }
  ~NcclWork() override {
    use_device();
    if (const cudaError_t status = cudaEventDestroy(done_); status != cudaSuccess)
      report_cleanup_failure("cudaEventDestroy", cudaGetErrorString(status));
  }

  cudaEvent_t done_event() const { return done_; }

  void wait() override {
    throw_if_failed();
    MERIDIAN_COMM_CUDA_CHECK(cudaStreamWaitEvent(compute_stream_, done_, 0));
    if (!comm_alive_->load()) return;  // the communicator is gone; it synchronised before that
    ncclResult_t async_status = ncclSuccess;
    MERIDIAN_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async_status));
    if (async_status != ncclSuccess && async_status != ncclInProgress)
      fail(detail::concat(info().describe(), " failed: ", ncclGetErrorString(async_status)));
    throw_if_failed();
  }

  bool is_completed() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!failure_.empty() || completed_) return true;
    use_device();
    const cudaError_t status = cudaEventQuery(done_);
    if (status == cudaErrorNotReady) return false;
    if (status != cudaSuccess) {
      failure_ = detail::concat(info().describe(),
                                ": cudaEventQuery failed: ", cudaGetErrorString(status));
      return true;
    }
    completed_ = true;
    buffers_.clear();  // the GPU is done with them
    return true;
  }

  void fail(const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.empty()) failure_ = reason;
  }

 private:
  void throw_if_failed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!failure_.empty()) throw Error(failure_);
  }

  // The watchdog thread polls (and may destroy) this work. A thread starts on device 0, and its first
  // CUDA call there would create a context on GPU 0 in every rank's process (about 0.5 GiB each,
  // taken from rank 0's memory; an error on GPUs in exclusive mode). So switch to the work's device,
  // without switching back: going back to 0 would create that context all the same (cudaSetDevice
  // creates it). On the issuing thread the device is already current and nothing changes.
  void use_device() const {
    int current = -1;
    if (cudaGetDevice(&current) != cudaSuccess || current != device_) {
      if (cudaSetDevice(device_) != cudaSuccess) cudaGetLastError();
    }
  }

  int device_;
  ncclComm_t comm_;
  std::shared_ptr<const std::atomic<bool>> comm_alive_;
  cudaStream_t compute_stream_;
  cudaEvent_t done_ = nullptr;
  mutable std::mutex mutex_;
  mutable std::string failure_;
  mutable bool completed_ = false;
  mutable std::vector<Tensor> buffers_;
};

}  // namespace

std::shared_ptr<NcclCommunicator> NcclCommunicator::create(std::shared_ptr<Communicator> bootstrap,
                                                           NcclOptions options) {
  MERIDIAN_CHECK(bootstrap != nullptr, "NCCL needs a bootstrap communicator");
  MERIDIAN_CHECK(options.watchdog != nullptr, "NCCL communicators need a watchdog");
  MERIDIAN_COMM_CUDA_CHECK(cudaSetDevice(options.device_index));

  // The id is 128 opaque bytes; it travels as a u16 tensor because broadcast moves any dtype.
  static_assert(sizeof(ncclUniqueId) % sizeof(uint16_t) == 0);
  Tensor id_bytes =
      Tensor::zeros({static_cast<int64_t>(sizeof(ncclUniqueId) / sizeof(uint16_t))}, DType::u16);
  ncclUniqueId id;
  if (bootstrap->rank() == 0) {
    MERIDIAN_NCCL_CHECK(ncclGetUniqueId(&id));
    std::memcpy(id_bytes.raw_data(), &id, sizeof(id));
  }
  bootstrap->broadcast(id_bytes, 0)->wait();
  std::memcpy(&id, id_bytes.raw_data(), sizeof(id));

  ncclComm_t comm = nullptr;
  MERIDIAN_NCCL_CHECK(ncclCommInitRank(&comm, bootstrap->size(), id, bootstrap->rank()));
  return std::make_shared<NcclCommunicator>(std::move(bootstrap), std::move(options), comm);
}

NcclCommunicator::NcclCommunicator(std::shared_ptr<Communicator> bootstrap, NcclOptions options,
                                   ncclComm* comm)
    : bootstrap_(std::move(bootstrap)),
      options_(std::move(options)),
      comm_(comm),
      rank_(bootstrap_->rank()),
      size_(bootstrap_->size()),
      compute_stream_(options_.compute_stream) {
  DeviceGuard device(options_.device_index);
  // Non-blocking: the comm stream must not serialise with the legacy default stream.
  MERIDIAN_COMM_CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
  MERIDIAN_COMM_CUDA_CHECK(cudaMalloc(&barrier_scratch_, sizeof(float)));
  MERIDIAN_COMM_CUDA_CHECK(cudaMemsetAsync(barrier_scratch_, 0, sizeof(float), comm_stream_));
}

NcclCommunicator::~NcclCommunicator() {
  if (cudaSetDevice(options_.device_index) != cudaSuccess) cudaGetLastError();
  if (const cudaError_t status = cudaStreamSynchronize(comm_stream_); status != cudaSuccess)
    report_cleanup_failure("cudaStreamSynchronize", cudaGetErrorString(status));
  in_flight_.clear();
  comm_alive_->store(false);  // handles that outlive the communicator stop asking NCCL about it
  if (const ncclResult_t status = ncclCommDestroy(comm_); status != ncclSuccess)
    report_cleanup_failure("ncclCommDestroy", ncclGetErrorString(status));
  if (const cudaError_t status = cudaFree(barrier_scratch_); status != cudaSuccess)
    report_cleanup_failure("cudaFree", cudaGetErrorString(status));
  if (const cudaError_t status = cudaStreamDestroy(comm_stream_); status != cudaSuccess)
    report_cleanup_failure("cudaStreamDestroy", cudaGetErrorString(status));
}

void NcclCommunicator::set_compute_stream(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(issue_mutex_);
  compute_stream_ = stream;
}

template <class Launch>
WorkHandle NcclCommunicator::issue(std::string_view op, size_t bytes, std::vector<Tensor> buffers,
                                   Launch&& launch) {
  std::lock_guard<std::mutex> lock(issue_mutex_);
  DeviceGuard device(options_.device_index);
  std::erase_if(in_flight_, [](const std::shared_ptr<Work>& work) { return work->is_completed(); });

  auto work =
      std::make_shared<NcclWork>(WorkInfo{std::string(op), name(), ++sequence_, size_, bytes},
                                 options_.device_index, comm_, comm_alive_, compute_stream_, std::move(buffers));
  // The comm stream starts after everything already queued on the compute stream.
  cudaEvent_t ready = nullptr;
  MERIDIAN_COMM_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  MERIDIAN_COMM_CUDA_CHECK(cudaEventRecord(ready, compute_stream_));
  MERIDIAN_COMM_CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, ready, 0));
  MERIDIAN_COMM_CUDA_CHECK(cudaEventDestroy(ready));  // released once the wait has run

  launch();
  MERIDIAN_COMM_CUDA_CHECK(cudaEventRecord(work->done_event(), comm_stream_));
  in_flight_.push_back(work);
  options_.watchdog->watch(work);
  return work;
}

WorkHandle NcclCommunicator::all_reduce(Tensor& tensor, ReduceOp op) {
  const OpContext context{"all_reduce", name(), size_};
  const Device device = Device::cuda(options_.device_index);
  check_tensor(context, "tensor", tensor, device);
  check_reducible(context, tensor.dtype(), op);
  return issue(context.op, tensor.nbytes(), {tensor}, [&] {
    MERIDIAN_NCCL_CHECK(
        ncclAllReduce(tensor.raw_data(), tensor.raw_data(), static_cast<size_t>(tensor.numel()),
                      nccl_reduce_type(tensor.dtype()), nccl_reduce_op(op), comm_, comm_stream_));
  });
}

WorkHandle NcclCommunicator::reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) {
  const OpContext context{"reduce_scatter", name(), size_};
  const Device device = Device::cuda(options_.device_index);
  check_tensor(context, "input", input, device);
  check_tensor(context, "output", output, device);
  check_same_dtype(context, input, output);
  check_reducible(context, input.dtype(), op);
  check_chunked(context, input, "input", output, "output");
  chunk_placement(context, input, output, rank_);  // NCCL's in-place layout is the same as ours
  return issue(context.op, input.nbytes(), {input, output}, [&] {
    MERIDIAN_NCCL_CHECK(ncclReduceScatter(
        input.raw_data(), output.raw_data(), static_cast<size_t>(output.numel()),
        nccl_reduce_type(input.dtype()), nccl_reduce_op(op), comm_, comm_stream_));
  });
}

WorkHandle NcclCommunicator::all_gather(const Tensor& input, Tensor& output) {
  const OpContext context{"all_gather", name(), size_};
  const Device device = Device::cuda(options_.device_index);
  check_tensor(context, "input", input, device);
  check_tensor(context, "output", output, device);
  check_same_dtype(context, input, output);
  check_chunked(context, output, "output", input, "input");
  chunk_placement(context, output, input, rank_);
  return issue(context.op, output.nbytes(), {input, output}, [&] {
    // Only bytes move: any dtype travels as ncclUint8.
    MERIDIAN_NCCL_CHECK(ncclAllGather(input.raw_data(), output.raw_data(), input.nbytes(),
                                      ncclUint8, comm_, comm_stream_));
  });
}

WorkHandle NcclCommunicator::broadcast(Tensor& tensor, int root) {
  const OpContext context{"broadcast", name(), size_};
  check_tensor(context, "tensor", tensor, Device::cuda(options_.device_index));
  check_root(context, root);
  return issue(context.op, tensor.nbytes(), {tensor}, [&] {
    MERIDIAN_NCCL_CHECK(ncclBroadcast(tensor.raw_data(), tensor.raw_data(), tensor.nbytes(),
                                      ncclUint8, root, comm_, comm_stream_));
  });
}

WorkHandle NcclCommunicator::send(const Tensor& tensor, int dst, int tag) {
  return send_recv({PeerTransfer::send(tensor, dst, tag)});
}

WorkHandle NcclCommunicator::recv(Tensor& tensor, int src, int tag) {
  return send_recv({PeerTransfer::recv(tensor, src, tag)});
}

WorkHandle NcclCommunicator::send_recv(const std::vector<PeerTransfer>& transfers) {
  const std::string_view op =
      transfers.size() == 1
          ? (transfers[0].direction == PeerTransfer::Direction::send ? std::string_view("send")
                                                                     : std::string_view("recv"))
          : std::string_view("send_recv");
  const OpContext context{op, name(), size_};
  const Device device = Device::cuda(options_.device_index);
  std::vector<Tensor> buffers;
  size_t bytes = 0;
  for (const PeerTransfer& transfer : transfers) {
    check_tensor(context, "tensor", transfer.tensor, device);
    check_peer(context, transfer.peer, rank_);
    buffers.push_back(transfer.tensor);
    bytes += transfer.tensor.nbytes();
  }
  return issue(op, bytes, std::move(buffers), [&] {
    // One group: all halves start together, so a rank's send and recv cannot block each other.
    MERIDIAN_NCCL_CHECK(ncclGroupStart());
    try {
      for (const PeerTransfer& transfer : transfers) {
        void* data = transfer.tensor.raw_data();
        if (transfer.direction == PeerTransfer::Direction::send)
          MERIDIAN_NCCL_CHECK(ncclSend(data, transfer.tensor.nbytes(), ncclUint8, transfer.peer,
                                       comm_, comm_stream_));
        else
          MERIDIAN_NCCL_CHECK(ncclRecv(data, transfer.tensor.nbytes(), ncclUint8, transfer.peer,
                                       comm_, comm_stream_));
      }
    } catch (...) {
      ncclGroupEnd();  // leave NCCL's group state balanced; the first error is the one reported
      throw;
    }
    MERIDIAN_NCCL_CHECK(ncclGroupEnd());
  });
}

WorkHandle NcclCommunicator::barrier() {
  // NCCL has no barrier; a one-element all-reduce on the comm stream serves (device-side only:
  // like every NCCL operation it orders streams, it does not block the host).
  return issue("barrier", 0, {}, [&] {
    MERIDIAN_NCCL_CHECK(ncclAllReduce(barrier_scratch_, barrier_scratch_, 1, ncclFloat32, ncclSum,
                                      comm_, comm_stream_));
  });
}

std::shared_ptr<Communicator> NcclCommunicator::split(int color, int key, const std::string& name) {
  std::shared_ptr<Communicator> child_bootstrap = bootstrap_->split(color, key, name);
  if (!child_bootstrap) return nullptr;
  NcclOptions child_options = options_;
  {
    std::lock_guard<std::mutex> lock(issue_mutex_);
    child_options.compute_stream = compute_stream_;
  }
  return create(std::move(child_bootstrap), std::move(child_options));
}

}  // namespace meridian::comm

// The emulator's own check of work racing with an NCCL transfer (emu_cuda.h, "in flight"): on a GPU the
// compute stream runs ahead of the communication stream, so a kernel, copy or memset that writes what a
// queued transfer still reads or writes, or touches what it writes, races with it unless it waited for
// the transfer's event. The emulator must report each such write, naming both sides, and must not
// report reads of a transfer's input, nor writes once the transfer is done. Two ranks; each holds its
// communication stream with a host function, so that the transfer is surely still queued while the
// host issues the planted work, then lets it go.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <nccl.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "launcher/testing/mpi_test_environment.h"
#include "ops/cuda/caching_allocator.h"

namespace meridian::testing {
namespace {

// Kernels as rewrite_cuda_sources.py turns `k<<<grid, block, 0, stream>>>(args)` into emulator launches.
void write_ones(float* p, int n) {
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) p[i] = 1.0f;
}
void write_twos(float* p, int n) {
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) p[i] = 2.0f;
}
void copy_values(float* out, const float* in, int n) {
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) out[i] = in[i];
}
void launch_write_ones(float* p, int n, cudaStream_t stream) {
  emu::make_launch("write_ones", emu::kernel_id(&write_ones), dim3(1), dim3(32), 0, stream)(
      [](auto... a) { write_ones(a...); }, p, n);
}
void launch_write_twos(float* p, int n, cudaStream_t stream) {
  emu::make_launch("write_twos", emu::kernel_id(&write_twos), dim3(1), dim3(32), 0, stream)(
      [](auto... a) { write_twos(a...); }, p, n);
}
void launch_copy_values(float* out, const float* in, int n, cudaStream_t stream) {
  emu::make_launch("copy_values", emu::kernel_id(&copy_values), dim3(1), dim3(32), 0, stream)(
      [](auto... a) { copy_values(a...); }, out, in, n);
}

// Holds a stream until released: what is queued behind the hold stays in flight meanwhile.
class StreamHold {
 public:
  explicit StreamHold(cudaStream_t stream) : stream_(stream) {
    EXPECT_EQ(cudaLaunchHostFunc(stream_, &StreamHold::wait, this), cudaSuccess);
  }
  ~StreamHold() {
    release();
    cudaStreamSynchronize(stream_);  // the queued wait reads this object
  }
  StreamHold(const StreamHold&) = delete;
  StreamHold& operator=(const StreamHold&) = delete;
  void release() { released_.store(true); }
  // Returns once the stream has reached the hold: what was queued before it is done.
  void wait_until_reached() const {
    while (!reached_.load()) std::this_thread::yield();
  }

 private:
  static void wait(void* self) {
    auto* hold = static_cast<StreamHold*>(self);
    hold->reached_.store(true);
    while (!hold->released_.load()) std::this_thread::yield();
  }
  cudaStream_t stream_;
  std::atomic<bool> reached_{false}, released_{false};
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class TransferRaces : public ::testing::Test {
 protected:
  static constexpr int kCount = 1000;  // floats per buffer
  static constexpr size_t kBytes = kCount * sizeof(float);

  void SetUp() override {
    MERIDIAN_REQUIRE_WORLD_SIZE(2);
    rank_ = runtime().world_rank();
    Tensor id_bytes = Tensor::zeros({static_cast<int64_t>(sizeof(ncclUniqueId) / sizeof(uint16_t))}, DType::u16);
    ncclUniqueId id{};
    if (rank_ == 0) {
      ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
      std::memcpy(id_bytes.raw_data(), &id, sizeof(id));
    }
    world().broadcast(id_bytes, 0)->wait();
    std::memcpy(&id, id_bytes.raw_data(), sizeof(id));
    ASSERT_EQ(ncclCommInitRank(&comm_, 2, id, rank_), ncclSuccess);
    ASSERT_EQ(cudaStreamCreate(&comm_stream_), cudaSuccess);
    ASSERT_EQ(cudaStreamCreate(&compute_stream_), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&data_, 2 * kBytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&other_, 2 * kBytes), cudaSuccess);
    ASSERT_EQ(cudaMemset(data_, 0, 2 * kBytes), cudaSuccess);
    ASSERT_EQ(cudaMemset(other_, 0, 2 * kBytes), cudaSuccess);
    warnings_before_ = emu::warnings().size();
  }

  void TearDown() override {
    if (comm_ != nullptr) {
      EXPECT_EQ(ncclCommDestroy(comm_), ncclSuccess);
    }
    cudaFree(data_);
    cudaFree(other_);
    if (comm_stream_ != nullptr) cudaStreamDestroy(comm_stream_);
    if (compute_stream_ != nullptr) cudaStreamDestroy(compute_stream_);
  }

  // The emulator gives each distinct warning once per process, so a planted writer whose warning an
  // earlier test has already drawn is named apart (write_twos beside write_ones).
  std::vector<std::string> new_warnings() const {
    const std::vector<std::string> all = emu::warnings();
    return {all.begin() + static_cast<std::ptrdiff_t>(warnings_before_), all.end()};
  }

  void receive_from_rank_0() {
    ASSERT_EQ(ncclRecv(data_, kCount, ncclFloat32, 0, comm_, comm_stream_), ncclSuccess);
    ASSERT_EQ(cudaStreamSynchronize(comm_stream_), cudaSuccess);
  }

  int rank_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t comm_stream_ = nullptr, compute_stream_ = nullptr;
  float* data_ = nullptr;
  float* other_ = nullptr;
  size_t warnings_before_ = 0;
};

TEST_F(TransferRaces, WritingWhatASendStillReadsIsReportedAndReadingItIsNot) {
  if (rank_ == 1) {
    receive_from_rank_0();
    EXPECT_TRUE(new_warnings().empty());
    return;
  }
  {
    StreamHold hold(comm_stream_);
    ASSERT_EQ(ncclSend(data_, kCount, ncclFloat32, 1, comm_, comm_stream_), ncclSuccess);
    launch_copy_values(other_, data_, kCount, compute_stream_);
    ASSERT_EQ(cudaMemcpyAsync(other_, data_, kBytes, cudaMemcpyDeviceToDevice, compute_stream_), cudaSuccess);
    EXPECT_TRUE(new_warnings().empty()) << new_warnings().front();

    launch_write_ones(data_ + kCount / 2, kCount / 4, compute_stream_);
    ASSERT_EQ(cudaMemsetAsync(data_, 1, sizeof(float), compute_stream_), cudaSuccess);  // was 0
  }
  const std::vector<std::string> warnings = new_warnings();
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_TRUE(contains(warnings[0], "kernel write_ones wrote device memory that ncclSend on another stream is "
                                    "still reading")) << warnings[0];
  EXPECT_TRUE(contains(warnings[1], "cudaMemsetAsync wrote device memory that ncclSend")) << warnings[1];
}

// A send queued behind a receive of the same memory reads what the receive wrote: from the receive's end
// (not only from the send's start) a write to it races with the send.
TEST_F(TransferRaces, WritingWhatAQueuedSendReadsOnceTheReceiveBeforeItEndedIsReported) {
  if (rank_ == 1) {
    ASSERT_EQ(ncclSend(other_, kCount, ncclFloat32, 0, comm_, comm_stream_), ncclSuccess);
    ASSERT_EQ(ncclRecv(other_ + kCount, kCount, ncclFloat32, 0, comm_, comm_stream_), ncclSuccess);
    ASSERT_EQ(cudaStreamSynchronize(comm_stream_), cudaSuccess);
    EXPECT_TRUE(new_warnings().empty()) << new_warnings().front();
    return;
  }
  ASSERT_EQ(ncclRecv(data_, kCount, ncclFloat32, 1, comm_, comm_stream_), ncclSuccess);
  {
    StreamHold hold(comm_stream_);
    ASSERT_EQ(ncclSend(data_, kCount, ncclFloat32, 1, comm_, comm_stream_), ncclSuccess);
    hold.wait_until_reached();  // the receive is done, the send still queued
    launch_write_twos(data_, kCount, compute_stream_);  // rank 1 sent zeros
  }
  const std::vector<std::string> warnings = new_warnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(contains(warnings[0], "kernel write_twos wrote device memory that ncclSend on another stream is "
                                    "still reading")) << warnings[0];
}

TEST_F(TransferRaces, WritingWhatASendReadAfterWaitingForItIsNoRace) {
  if (rank_ == 1) {
    receive_from_rank_0();
    EXPECT_TRUE(new_warnings().empty());
    return;
  }
  cudaEvent_t done = nullptr;
  ASSERT_EQ(cudaEventCreate(&done), cudaSuccess);
  {
    StreamHold hold(comm_stream_);
    ASSERT_EQ(ncclSend(data_, kCount, ncclFloat32, 1, comm_, comm_stream_), ncclSuccess);
    ASSERT_EQ(cudaEventRecord(done, comm_stream_), cudaSuccess);
    hold.release();
    ASSERT_EQ(cudaStreamWaitEvent(compute_stream_, done, 0), cudaSuccess);
    launch_write_ones(data_, kCount, compute_stream_);
  }
  cudaEventDestroy(done);
  EXPECT_TRUE(new_warnings().empty()) << new_warnings().front();
}

// Meridian's caching allocator hands blocks out again in the compute stream's order, so a tensor that a
// transfer uses must live until the transfer is done: freeing it earlier is reported, and so is the
// block's next owner writing what the send still reads.
TEST_F(TransferRaces, FreeingATensorThatATransferStillUsesIsReported) {
  ops::cuda::CudaCachingAllocator allocator(0);
  void* block = allocator.allocate(kBytes);
  ASSERT_EQ(cudaMemset(block, 0, kBytes), cudaSuccess);
  void* next = nullptr;
  {
    StreamHold hold(comm_stream_);
    if (rank_ == 0) {
      ASSERT_EQ(ncclSend(block, kCount, ncclFloat32, 1, comm_, comm_stream_), ncclSuccess);
      allocator.deallocate(block, kBytes);  // the tensor dies before the send is done
      next = allocator.allocate(kBytes);
      EXPECT_EQ(next, block);
    } else {
      ASSERT_EQ(ncclRecv(block, kCount, ncclFloat32, 0, comm_, comm_stream_), ncclSuccess);
      allocator.deallocate(block, kBytes);  // and here before the receive is
      // Taken again before the receive runs, so that it writes no freed (under ASan, poisoned) memory.
      next = allocator.allocate(kBytes);
    }
  }
  if (next != nullptr) allocator.deallocate(next, kBytes);
  const std::vector<std::string> warnings = new_warnings();
  ASSERT_EQ(warnings.size(), rank_ == 0 ? 2u : 1u);
  EXPECT_TRUE(contains(warnings[0], std::string("the caching allocator got back a block that ") +
                                        (rank_ == 0 ? "ncclSend on another stream still reads"
                                                    : "ncclRecv on another stream still writes") +
                                        ": its tensor was freed before the transfer was done"))
      << warnings[0];
  if (rank_ == 0) {
    EXPECT_TRUE(contains(warnings[1], "the caching allocator, handing out again a block whose tensor was freed, "
                                      "wrote device memory that ncclSend")) << warnings[1];
  }
}

// In place, as ZeRO reduces its gradients: each rank's output is its half of the input. The rest of
// the input is only read, the output is written.
TEST_F(TransferRaces, InPlaceReduceScatterWatchesItsInputAndItsOutput) {
  float* const output = data_ + rank_ * kCount;
  float* const rest = data_ + (1 - rank_) * kCount;
  {
    StreamHold hold(comm_stream_);
    ASSERT_EQ(ncclReduceScatter(data_, output, kCount, ncclFloat32, ncclSum, comm_, comm_stream_), ncclSuccess);
    if (rank_ == 0)
      launch_write_ones(rest, kCount, compute_stream_);
    else
      ASSERT_EQ(cudaMemsetAsync(output, 0, kBytes, compute_stream_), cudaSuccess);
  }
  const std::vector<std::string> warnings = new_warnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(contains(warnings[0], rank_ == 0 ? "kernel write_ones wrote device memory that ncclReduceScatter"
                                               : "cudaMemsetAsync touches device memory that ncclReduceScatter on "
                                                 "another stream is still writing"))
      << warnings[0];
}

}  // namespace
}  // namespace meridian::testing

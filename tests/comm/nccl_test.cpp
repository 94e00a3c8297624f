// The NCCL backend on CUDA tensors. Needs one GPU per rank on the node; skips otherwise (and in
// builds without the CUDA backend). Data is made on the host and copied, so the checks share the
// rank-seeded helpers with the MPI tests.
#include <gtest/gtest.h>

#include "launcher/testing/mpi_test_environment.h"
#include "rank_seeded_data.h"

#if MERIDIAN_HAS_NCCL
#include <cuda_runtime_api.h>

#include <thread>

#include "parallel/comm/nccl_communicator.h"
#endif

namespace meridian::testing {
namespace {

#if MERIDIAN_HAS_NCCL

using comm::NcclCommunicator;
using comm::NcclOptions;
using comm::PeerTransfer;
using comm::ReduceOp;

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(status));
}

Tensor to_device(const Tensor& host, int device) {
  void* memory = nullptr;
  check_cuda(cudaMalloc(&memory, std::max<size_t>(host.nbytes(), 1)), "cudaMalloc");
  auto storage = std::make_shared<Storage>(memory, host.nbytes(), Device::cuda(device),
                                           [](void* pointer) { cudaFree(pointer); });
  check_cuda(cudaMemcpy(memory, host.raw_data(), host.nbytes(), cudaMemcpyHostToDevice),
             "cudaMemcpy to device");
  return Tensor::from_storage(storage, host.shape(), host.dtype());
}

Tensor to_host(const Tensor& device_tensor) {
  Tensor host = Tensor::empty(device_tensor.shape(), device_tensor.dtype());
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  check_cuda(
      cudaMemcpy(host.raw_data(), device_tensor.raw_data(), host.nbytes(), cudaMemcpyDeviceToHost),
      "cudaMemcpy to host");
  return host;
}

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) {
      cudaGetLastError();
      devices = 0;
    }
    // The same verdict on every rank, or the bootstrap below would wait for absent ranks.
    Tensor fits = Tensor::full({1}, runtime().local_rank() < devices ? 1 : 0, DType::i32);
    world().all_reduce(fits, ReduceOp::sum)->wait();
    if (fits.data<int32_t>()[0] != world().size())
      GTEST_SKIP() << "needs one visible GPU per rank (" << devices << " visible here)";
    device_ = runtime().local_rank();
    nccl_ = NcclCommunicator::create(runtime().world(),
                                     NcclOptions{device_, nullptr, runtime().watchdog()});
  }

  int device_ = 0;
  std::shared_ptr<NcclCommunicator> nccl_;
};

float sum_over_ranks(int size, int64_t i) {
  float sum = 0.0f;
  for (int rank = 0; rank < size; ++rank) sum += seeded_value(rank, i);
  return sum;
}

TEST_F(Nccl, AllReduceSumAndAvg) {
  const int n = nccl_->size();
  for (const int64_t count : {int64_t{0}, int64_t{1}, int64_t{1001}, int64_t{4} << 20}) {
    Tensor sum = to_device(make_seeded(nccl_->rank(), count), device_);
    Tensor avg = to_device(make_seeded(nccl_->rank(), count, DType::bf16), device_);
    auto first = nccl_->all_reduce(sum, ReduceOp::sum);
    auto second = nccl_->all_reduce(avg, ReduceOp::avg);
    second->wait();
    first->wait();
    expect_elements(
        to_host(sum), [&](int64_t i) { return sum_over_ranks(n, i); }, "nccl sum");
    expect_elements(
        to_host(avg), [&](int64_t i) { return sum_over_ranks(n, i) / n; }, "nccl avg",
        /*tolerance=*/0.05f);
  }
}

TEST_F(Nccl, ReduceScatterAllGatherBroadcast) {
  const int n = nccl_->size();
  const int r = nccl_->rank();
  const int64_t count = 1001;
  Tensor input = to_device(make_seeded(r, count * n), device_);
  Tensor shard = to_device(Tensor::zeros({count}), device_);
  nccl_->reduce_scatter(input, shard, ReduceOp::sum)->wait();
  expect_elements(
      to_host(shard), [&](int64_t i) { return sum_over_ranks(n, r * count + i); },
      "nccl reduce_scatter");

  Tensor gathered = to_device(Tensor::zeros({count * n}), device_);
  nccl_->all_gather(to_device(make_seeded(r, count), device_), gathered)->wait();
  expect_elements(
      to_host(gathered),
      [&](int64_t i) { return seeded_value(static_cast<int>(i / count), i % count); },
      "nccl all_gather");

  Tensor broadcast = to_device(make_seeded(r, count), device_);
  nccl_->broadcast(broadcast, n - 1)->wait();
  expect_elements(
      to_host(broadcast), [&](int64_t i) { return seeded_value(n - 1, i); }, "nccl broadcast");
  nccl_->barrier()->wait();
}

TEST_F(Nccl, RingExchangeWithSendRecv) {
  const int n = nccl_->size();
  if (n < 2) GTEST_SKIP() << "needs two ranks with a GPU each";
  const int r = nccl_->rank();
  const int next = (r + 1) % n;
  const int previous = (r + n - 1) % n;
  Tensor incoming = to_device(Tensor::zeros({4096}), device_);
  nccl_
      ->send_recv({PeerTransfer::send(to_device(make_seeded(r, 4096), device_), next),
                   PeerTransfer::recv(incoming, previous)})
      ->wait();
  expect_elements(
      to_host(incoming), [&](int64_t i) { return seeded_value(previous, i); }, "nccl ring");
}

TEST_F(Nccl, SplitBuildsANcclGroup) {
  auto half = nccl_->split(nccl_->rank() % 2, nccl_->rank(), "halves");
  ASSERT_NE(half, nullptr);
  EXPECT_EQ(half->backend(), "nccl");
  Tensor ones = to_device(Tensor::full({8}, 1.0), device_);
  half->all_reduce(ones, ReduceOp::sum)->wait();
  expect_elements(
      to_host(ones), [&](int64_t) { return static_cast<float>(half->size()); },
      "nccl split all_reduce");
}

// The watchdog polls NCCL work from its own thread. That thread must end on the work's device, not
// create a context on GPU 0 (every rank but 0 would then hold memory on rank 0's GPU). Meaningful
// on ranks whose device is not 0, i.e. with two or more GPUs.
TEST_F(Nccl, PollingFromAnotherThreadStaysOnTheWorksDevice) {
  Tensor ones = to_device(Tensor::full({1024}, 1.0), device_);
  auto work = nccl_->all_reduce(ones, ReduceOp::sum);
  int polled_on = -1;
  std::thread poller([&] {
    while (!work->is_completed()) std::this_thread::yield();
    if (cudaGetDevice(&polled_on) != cudaSuccess) polled_on = -2;
  });
  poller.join();
  work->wait();
  EXPECT_EQ(polled_on, device_);
}

#else

TEST(Nccl, NotBuilt) { GTEST_SKIP() << "this build has no CUDA backend, so no NCCL backend"; }

#endif

}  // namespace
}  // namespace meridian::testing

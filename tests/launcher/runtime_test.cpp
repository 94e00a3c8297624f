// The Runtime's view of the job: node-local ranks, stop agreement, device binding errors.
#include "launcher/runtime.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

#include "launcher/device_binding.h"
#include "launcher/testing/mpi_test_environment.h"

namespace meridian::launcher {
namespace {

using meridian::testing::runtime;
using meridian::testing::world;

TEST(Runtime, LocalRanksNumberTheRanksOfEachNode) {
  // Gather (host, local rank, local size) from every rank; on each host the local ranks must be
  // exactly 0..local_size-1.
  const int size = runtime().world_size();
  const auto host_id =
      static_cast<int32_t>(std::hash<std::string>{}(runtime().hostname()) & 0x7fffffff);
  Tensor mine = Tensor::empty({3}, DType::i32);
  mine.data<int32_t>()[0] = host_id;
  mine.data<int32_t>()[1] = runtime().local_rank();
  mine.data<int32_t>()[2] = runtime().local_size();
  Tensor all = Tensor::empty({3 * size}, DType::i32);
  world().all_gather(mine, all)->wait();

  std::map<int32_t, std::set<int32_t>> local_ranks_by_host;
  std::map<int32_t, int32_t> local_size_by_host;
  for (int r = 0; r < size; ++r) {
    const int32_t* entry = all.data<int32_t>() + 3 * r;
    local_ranks_by_host[entry[0]].insert(entry[1]);
    local_size_by_host[entry[0]] = entry[2];
  }
  for (const auto& [host, local_ranks] : local_ranks_by_host) {
    EXPECT_EQ(static_cast<int32_t>(local_ranks.size()), local_size_by_host[host]);
    EXPECT_EQ(*local_ranks.begin(), 0);
    EXPECT_EQ(*local_ranks.rbegin(), local_size_by_host[host] - 1);
  }
  EXPECT_FALSE(runtime().hostname().empty());
}

TEST(Runtime, NoStopWithoutASignal) {
  EXPECT_FALSE(runtime().stop_requested());
  EXPECT_FALSE(runtime().agree_to_stop());
}

TEST(Runtime, CpuBindingNeedsNothing) {
  EXPECT_EQ(bind_device(DeviceKind::cpu, 0, 0, "host"), Device::cpu());
}

TEST(Runtime, MissingGpuIsAnErrorNamingRankHostAndDevice) {
  // Local rank 4096 exists on no machine.
  try {
    bind_device(DeviceKind::cuda, 7, 4096, "node-a");
    ADD_FAILURE() << "binding GPU 4096 succeeded";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what())
                  .find("rank 7 on host node-a: --device cuda needs cuda:4096 (node-local rank "
                        "4096) but"),
              std::string::npos)
        << error.what();
  }
}

TEST(Runtime, OnlyOneRuntimePerProcess) {
  int argc = 0;
  char** argv = nullptr;
  EXPECT_THROW(Runtime(argc, argv), Error);
}

}  // namespace
}  // namespace meridian::launcher

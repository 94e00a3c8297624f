#include "test_groups.h"

#include "launcher/testing/mpi_test_environment.h"
#include "parallel/process_grid.h"

namespace meridian::testing {

const std::vector<std::shared_ptr<comm::Communicator>>& test_groups() {
  static const std::vector<std::shared_ptr<comm::Communicator>> groups = [] {
    const int world_size = runtime().world_size();
    std::vector<std::shared_ptr<comm::Communicator>> out{runtime().world()};
    const int pair = world_size % 2 == 0 ? 2 : 1;
    parallel::ProcessGrid tensor_grid(runtime().world(), {pair, world_size / pair, 1});
    parallel::ProcessGrid pipeline_grid(runtime().world(), {1, world_size / pair, pair});
    out.push_back(tensor_grid.group_ptr(parallel::Axis::tp));
    out.push_back(tensor_grid.group_ptr(parallel::Axis::dp));
    out.push_back(pipeline_grid.group_ptr(parallel::Axis::pp));
    return out;
  }();
  return groups;
}

}  // namespace meridian::testing

// The grid layout (pure arithmetic, any size) and the groups ProcessGrid builds from it.
#include "parallel/process_grid.h"

#include <gtest/gtest.h>

#include "launcher/testing/mpi_test_environment.h"

namespace meridian::testing {
namespace {

using parallel::Axis;
using parallel::GridCoordinates;
using parallel::GridLayout;
using parallel::GridShape;
using parallel::ProcessGrid;

TEST(GridLayout, TensorParallelInnermostThenDataThenPipeline) {
  const GridLayout layout(GridShape{.tp = 2, .dp = 3, .pp = 4});
  EXPECT_EQ(layout.world_size(), 24);
  EXPECT_EQ(layout.stride(Axis::tp), 1);
  EXPECT_EQ(layout.stride(Axis::dp), 2);
  EXPECT_EQ(layout.stride(Axis::pp), 6);
  for (int rank = 0; rank < layout.world_size(); ++rank) {
    const GridCoordinates c = layout.coordinates(rank);
    EXPECT_EQ(rank, c.pp * 3 * 2 + c.dp * 2 + c.tp) << "world_rank = pp*dp*tp + dp*tp + tp";
    EXPECT_EQ(layout.world_rank(c), rank);
  }
  EXPECT_EQ(layout.coordinates(13), (GridCoordinates{.tp = 1, .dp = 0, .pp = 2}));
}

TEST(GridLayout, AxisMembersDifferOnlyInThatAxis) {
  const GridLayout layout(GridShape{.tp = 2, .dp = 2, .pp = 2});
  EXPECT_EQ(layout.axis_members(5, Axis::tp), (std::vector<int>{4, 5}));
  EXPECT_EQ(layout.axis_members(5, Axis::dp), (std::vector<int>{5, 7}));
  EXPECT_EQ(layout.axis_members(5, Axis::pp), (std::vector<int>{1, 5}));
}

TEST(GridLayout, RejectsEmptyAxesAndOutOfRangeRanks) {
  EXPECT_THROW(GridLayout(GridShape{.tp = 0, .dp = 1, .pp = 1}), Error);
  const GridLayout layout(GridShape{.tp = 2, .dp = 1, .pp = 1});
  EXPECT_THROW(layout.coordinates(2), Error);
  EXPECT_THROW(layout.world_rank(GridCoordinates{.tp = 2, .dp = 0, .pp = 0}), Error);
}

TEST(ProcessGrid, ShapeMustMatchTheWorld) {
  try {
    ProcessGrid grid(runtime().world(), GridShape{.tp = 1, .dp = world().size() + 1, .pp = 1});
    ADD_FAILURE() << "a grid larger than the world was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("but the world has " + std::to_string(world().size())),
              std::string::npos)
        << error.what();
  }
}

TEST(ProcessGrid, FourRanksAsTwoByTwoGivesTheRightGroups) {
  MERIDIAN_REQUIRE_WORLD_SIZE(4);
  ProcessGrid grid(runtime().world(), GridShape{.tp = 2, .dp = 2, .pp = 1});
  const int rank = world().rank();
  EXPECT_EQ(grid.coordinate(Axis::tp), rank % 2);
  EXPECT_EQ(grid.coordinate(Axis::dp), rank / 2);
  EXPECT_EQ(grid.tp().name(), "tp");
  EXPECT_EQ(grid.tp().size(), 2);
  EXPECT_EQ(grid.dp().size(), 2);
  EXPECT_EQ(grid.pp().size(), 1);
  EXPECT_EQ(grid.tp().rank(), grid.coordinate(Axis::tp));
  EXPECT_EQ(grid.dp().rank(), grid.coordinate(Axis::dp));

  // Membership, seen through communication: the sum of world ranks over each group.
  Tensor tp_sum = Tensor::full({1}, rank);
  Tensor dp_sum = Tensor::full({1}, rank);
  grid.tp().all_reduce(tp_sum, comm::ReduceOp::sum)->wait();
  grid.dp().all_reduce(dp_sum, comm::ReduceOp::sum)->wait();
  const std::vector<int> tp_members = grid.layout().axis_members(rank, Axis::tp);
  const std::vector<int> dp_members = grid.layout().axis_members(rank, Axis::dp);
  EXPECT_EQ(tp_sum.item<float>(),
            static_cast<float>(tp_members[0] + tp_members[1]));  // {0,1},{2,3}
  EXPECT_EQ(dp_sum.item<float>(),
            static_cast<float>(dp_members[0] + dp_members[1]));  // {0,2},{1,3}
  EXPECT_EQ(tp_sum.item<float>(), static_cast<float>(rank / 2 * 4 + 1));
  EXPECT_EQ(dp_sum.item<float>(), static_cast<float>(rank % 2 * 2 + 2));
}

TEST(ProcessGrid, PipelineGroupsSpanTheOuterAxis) {
  MERIDIAN_REQUIRE_WORLD_SIZE(4);
  ProcessGrid grid(runtime().world(), GridShape{.tp = 1, .dp = 2, .pp = 2});
  const int rank = world().rank();
  EXPECT_EQ(grid.coordinate(Axis::pp), rank / 2);
  EXPECT_EQ(grid.pp().rank(), rank / 2);
  // Stage 0 sends to stage 1 of the same dp replica: world ranks 0->2 and 1->3.
  Tensor activation = Tensor::full({5}, rank);
  if (grid.coordinate(Axis::pp) == 0) {
    grid.pp().send(activation, 1, 0)->wait();
  } else {
    grid.pp().recv(activation, 0, 0)->wait();
    EXPECT_EQ(activation.to_float_vector(), std::vector<float>(5, static_cast<float>(rank - 2)));
  }
}

}  // namespace
}  // namespace meridian::testing

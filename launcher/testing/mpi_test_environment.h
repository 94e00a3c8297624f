#pragma once
// For multi-rank GoogleTest programs linked with meridian_mpi_gtest_main: every rank runs every
// test; tests reach the job through these accessors. Keep ranks in step: issue the same
// collectives on every rank, check results with EXPECT_* after the communication (an ASSERT that
// returns early on one rank leaves the others waiting, until the watchdog aborts the job).
#include <gtest/gtest.h>

#include "launcher/runtime.h"

namespace meridian::testing {

launcher::Runtime& runtime();
comm::Communicator& world();

}  // namespace meridian::testing

// Skips (on every rank alike) unless the world has exactly / at least n ranks.
#define MERIDIAN_REQUIRE_WORLD_SIZE(n)                                    \
  do {                                                                    \
    if (::meridian::testing::runtime().world_size() != (n))               \
      GTEST_SKIP() << "needs exactly " << (n) << " ranks, the world has " \
                   << ::meridian::testing::runtime().world_size();        \
  } while (0)
#define MERIDIAN_REQUIRE_WORLD_SIZE_AT_LEAST(n)                            \
  do {                                                                     \
    if (::meridian::testing::runtime().world_size() < (n))                 \
      GTEST_SKIP() << "needs at least " << (n) << " ranks, the world has " \
                   << ::meridian::testing::runtime().world_size();         \
  } while (0)

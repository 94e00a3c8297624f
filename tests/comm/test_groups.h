#pragma once
// The groups the collective tests run on: the world, and the tp/dp/pp groups of process grids
// that fit the world (np=4: tp=2 x dp=2, and dp=2 x pp=2; np=2: tp=2, pp=2; odd np: dp=np), so
// each collective is checked on sub-groups whose members are not consecutive world ranks, and on
// groups of one. Built once, on first use, collectively (every rank runs the tests in order).
#include <memory>
#include <vector>

#include "parallel/comm/communicator.h"

namespace meridian::testing {

const std::vector<std::shared_ptr<comm::Communicator>>& test_groups();

}  // namespace meridian::testing

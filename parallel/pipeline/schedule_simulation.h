#pragma once
// Runs the action lists of every rank of a schedule on a model of the pipeline: each pass takes a
// fixed time, transfers are instantaneous, a pass starts when its rank is free and its input is
// there. Says whether the lists can run to the end at all (a list order that waits for something
// only produced later would deadlock the real pipeline), and what bubble and activation count they
// give. Tests check every schedule with it; the benchmark prints its figures next to measurements.
#include <vector>

#include "parallel/pipeline/schedule.h"

namespace meridian::parallel {

// Time of one pass of one chunk (a chunk holds 1/V of a rank's blocks with V virtual stages).
struct PassCosts {
  double forward = 1.0;
  double backward = 2.0;         // whole backward
  double backward_input = 1.0;   // B of a split backward
  double backward_weight = 1.0;  // W of a split backward
};

struct SimulatedPipeline {
  double makespan = 0.0;
  std::vector<double> busy;             // per rank
  std::vector<double> bubble_fraction;  // per rank: 1 − busy / makespan
  // Per rank: most micro-batch chunks whose forward has run and whose backward (W for a split
  // backward) has not, at any moment.
  std::vector<int> peak_live_micro_batches;
};

// Throws meridian::Error naming each rank's next action when the lists cannot run to the end, or
// when a list does not hold every pass of every (chunk, micro-batch) exactly once.
SimulatedPipeline simulate_schedule(ScheduleKind kind, const ScheduleShape& shape, const PassCosts& costs = {});

}  // namespace meridian::parallel

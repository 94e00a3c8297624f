#include "parallel/pipeline/schedule_simulation.h"

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>
#include <tuple>

#include "core/error.h"

namespace meridian::parallel {

namespace {

// A pass of one micro-batch at one global stage; backward and backward_input count as the same
// event (the gradient the previous stage waits for).
struct PassKey {
  PassKind pass;
  int stage;
  int micro_batch;
  bool operator<(const PassKey& o) const {
    return std::tie(pass, stage, micro_batch) < std::tie(o.pass, o.stage, o.micro_batch);
  }
};

PassKind gradient_event(PassKind pass) {
  return pass == PassKind::backward_input ? PassKind::backward : pass;
}

double cost_of(PassKind pass, const PassCosts& costs) {
  switch (pass) {
    case PassKind::forward: return costs.forward;
    case PassKind::backward: return costs.backward;
    case PassKind::backward_input: return costs.backward_input;
    case PassKind::backward_weight: return costs.backward_weight;
  }
  return 0.0;
}

void check_complete(const std::vector<std::vector<PipelineAction>>& lists, ScheduleKind kind,
                    const ScheduleShape& shape) {
  const bool split = splits_backward(kind);
  for (size_t rank = 0; rank < lists.size(); ++rank) {
    std::map<std::tuple<int, int, int>, int> seen;
    for (const PipelineAction& a : lists[rank]) {
      if (a.chunk < 0 || a.chunk >= shape.virtual_stages || a.micro_batch < 0 || a.micro_batch >= shape.micro_batches)
        MERIDIAN_FAIL("schedule ", schedule_name(kind), ": rank ", rank, " has action ", to_string(a),
                      " outside the shape");
      ++seen[{static_cast<int>(a.pass), a.chunk, a.micro_batch}];
    }
    const std::vector<PassKind> passes = split ? std::vector<PassKind>{PassKind::forward, PassKind::backward_input,
                                                                       PassKind::backward_weight}
                                               : std::vector<PassKind>{PassKind::forward, PassKind::backward};
    const size_t expected = passes.size() * static_cast<size_t>(shape.virtual_stages * shape.micro_batches);
    for (PassKind pass : passes)
      for (int c = 0; c < shape.virtual_stages; ++c)
        for (int m = 0; m < shape.micro_batches; ++m)
          if (seen[{static_cast<int>(pass), c, m}] != 1)
            MERIDIAN_FAIL("schedule ", schedule_name(kind), ": rank ", rank, " runs ",
                          to_string({pass, c, m}), " (", pass_name(pass), ") ",
                          seen[{static_cast<int>(pass), c, m}], " times");
    if (lists[rank].size() != expected)
      MERIDIAN_FAIL("schedule ", schedule_name(kind), ": rank ", rank, " has ", lists[rank].size(),
                    " actions, expected ", expected);
  }
}

}  // namespace

SimulatedPipeline simulate_schedule(ScheduleKind kind, const ScheduleShape& shape, const PassCosts& costs) {
  const int p = shape.pipeline_size, stages = shape.stages();
  std::vector<std::vector<PipelineAction>> lists;
  for (int r = 0; r < p; ++r) lists.push_back(build_schedule(kind, shape, r));
  check_complete(lists, kind, shape);

  const bool split = splits_backward(kind);
  std::map<PassKey, double> finished;
  const auto finish_time = [&](PassKind pass, int stage, int micro_batch) -> std::optional<double> {
    auto it = finished.find({pass, stage, micro_batch});
    if (it == finished.end()) return std::nullopt;
    return it->second;
  };

  SimulatedPipeline result;
  result.busy.assign(static_cast<size_t>(p), 0.0);
  result.peak_live_micro_batches.assign(static_cast<size_t>(p), 0);
  std::vector<double> free_at(static_cast<size_t>(p), 0.0);
  std::vector<size_t> next(static_cast<size_t>(p), 0);
  std::vector<int> live(static_cast<size_t>(p), 0);
  size_t remaining = 0;
  for (const auto& list : lists) remaining += list.size();

  while (remaining > 0) {
    bool progressed = false;
    for (int r = 0; r < p; ++r) {
      // Run as many of this rank's actions as have their inputs.
      while (next[static_cast<size_t>(r)] < lists[static_cast<size_t>(r)].size()) {
        const PipelineAction& a = lists[static_cast<size_t>(r)][next[static_cast<size_t>(r)]];
        const int stage = a.chunk * p + r;
        std::optional<double> ready = 0.0;
        if (a.pass == PassKind::forward) {
          if (stage > 0) ready = finish_time(PassKind::forward, stage - 1, a.micro_batch);
        } else if (a.pass == PassKind::backward_weight) {
          ready = finish_time(PassKind::backward, stage, a.micro_batch);
        } else {
          ready = finish_time(PassKind::forward, stage, a.micro_batch);
          if (ready && stage < stages - 1) {
            const std::optional<double> gradient = finish_time(PassKind::backward, stage + 1, a.micro_batch);
            ready = gradient ? std::optional<double>(std::max(*ready, *gradient)) : std::nullopt;
          }
        }
        if (!ready) break;
        const double start = std::max(free_at[static_cast<size_t>(r)], *ready);
        const double cost = cost_of(a.pass, costs);
        free_at[static_cast<size_t>(r)] = start + cost;
        result.busy[static_cast<size_t>(r)] += cost;
        finished[{gradient_event(a.pass), stage, a.micro_batch}] = start + cost;
        int& alive = live[static_cast<size_t>(r)];
        if (a.pass == PassKind::forward) {
          ++alive;
          result.peak_live_micro_batches[static_cast<size_t>(r)] =
              std::max(result.peak_live_micro_batches[static_cast<size_t>(r)], alive);
        } else if (a.pass == (split ? PassKind::backward_weight : PassKind::backward)) {
          --alive;
        }
        ++next[static_cast<size_t>(r)];
        --remaining;
        progressed = true;
      }
    }
    if (!progressed) {
      std::ostringstream stuck;
      for (int r = 0; r < p; ++r) {
        const auto& list = lists[static_cast<size_t>(r)];
        stuck << " rank " << r << " at "
              << (next[static_cast<size_t>(r)] < list.size() ? to_string(list[next[static_cast<size_t>(r)]]) : "end")
              << ";";
      }
      MERIDIAN_FAIL("schedule ", schedule_name(kind), " (pp ", p, ", V ", shape.virtual_stages, ", M ",
                    shape.micro_batches, ") deadlocks:", stuck.str());
    }
  }
  result.makespan = *std::max_element(free_at.begin(), free_at.end());
  for (double busy : result.busy) result.bubble_fraction.push_back(1.0 - busy / result.makespan);
  return result;
}

}  // namespace meridian::parallel

#pragma once
// The trainer's pipeline-parallel flags (used with --pp > 1):
//
//   --schedule gpipe|1f1b|interleaved|zb-h1   default 1f1b
//   --virtual-stages V                        model chunks per rank (interleaved)
//   --micro-batches M                         each rank's --batch splits into M micro-batches
//   --pp-split a,b,...                        blocks per global stage (default: balanced)
//   --trace PATH                              per-rank Chrome trace: PATH with ".rank<R>" inserted
#include <cstdint>
#include <cxxopts.hpp>
#include <string>
#include <vector>

#include "launcher/parallel_options.h"
#include "parallel/pipeline/schedule.h"
#include "parallel/pipeline/stage_partition.h"

namespace meridian::train {

struct PipelineFlags {
  parallel::ScheduleKind schedule = parallel::ScheduleKind::one_f_one_b;
  int virtual_stages = 1;
  int micro_batches = 1;
  std::vector<int64_t> split;  // empty: balanced
  std::string trace;           // empty: no trace file
  bool given = false;          // any of the flags was on the command line
};

void add_pipeline_options(cxxopts::Options& cli);
// Reads the flags; throws launcher::UsageError naming the flag, also when one is given without
// --pp > 1.
PipelineFlags read_pipeline_options(const cxxopts::ParseResult& parsed, const launcher::ParallelConfig& parallel);
// Checks the flags against the layout (pp > 1), the model's layer count and the per-rank batch, the
// same on every rank: layers < pp·V, a split that does not fit, a batch or micro-batch count the
// schedule cannot use. Throws launcher::UsageError. Returns the blocks of every global stage.
std::vector<parallel::StageBlocks> check_pipeline_layout(const PipelineFlags& flags,
                                                         const launcher::ParallelConfig& parallel, int64_t layers,
                                                         int64_t batch, int64_t grad_accum);
// "trace.json" → "trace.rank3.json"; "trace" → "trace.rank3".
std::string trace_path_for_rank(const std::string& path, int rank);

}  // namespace meridian::train

#include "pipeline_options.h"

#include <filesystem>

#include "core/error.h"
#include "launcher/usage_error.h"
#include "train_options.h"

namespace meridian::train {

void add_pipeline_options(cxxopts::Options& cli) {
  // clang-format off
  cli.add_options("Pipeline parallel (with --pp > 1)")
    ("schedule", "gpipe, 1f1b, interleaved or zb-h1", cxxopts::value<std::string>()->default_value("1f1b"))
    ("virtual-stages", "model chunks per rank (interleaved schedule)", cxxopts::value<int>()->default_value("1"))
    ("micro-batches", "micro-batches each rank's --batch is split into", cxxopts::value<int>()->default_value("1"))
    ("pp-split", "blocks per pipeline stage, e.g. 3,3,2,4 (default: balanced)", cxxopts::value<std::string>())
    ("trace", "write each rank's timeline as Chrome trace JSON to PATH with .rank<R> inserted", cxxopts::value<std::string>());
  // clang-format on
}

PipelineFlags read_pipeline_options(const cxxopts::ParseResult& parsed, const launcher::ParallelConfig& parallel) {
  PipelineFlags flags;
  for (const char* name : {"schedule", "virtual-stages", "micro-batches", "pp-split", "trace"})
    flags.given |= parsed.count(name) > 0;
  if (flags.given && parallel.grid.pp == 1)
    MERIDIAN_USAGE_ERROR("--schedule, --virtual-stages, --micro-batches, --pp-split and --trace need --pp > 1");
  try {
    flags.schedule = parallel::parse_schedule_kind(parsed["schedule"].as<std::string>());
  } catch (const Error& e) {
    MERIDIAN_USAGE_ERROR("--schedule: ", e.what());
  }
  if (parsed.count("pp-split")) {
    try {
      flags.split = parallel::parse_stage_split(parsed["pp-split"].as<std::string>());
    } catch (const Error& e) {
      MERIDIAN_USAGE_ERROR("--pp-split: ", e.what());
    }
  }
  flags.virtual_stages = parsed["virtual-stages"].as<int>();
  flags.micro_batches = parsed["micro-batches"].as<int>();
  if (flags.virtual_stages < 1) MERIDIAN_USAGE_ERROR("--virtual-stages must be at least 1, got ", flags.virtual_stages);
  if (flags.micro_batches < 1) MERIDIAN_USAGE_ERROR("--micro-batches must be at least 1, got ", flags.micro_batches);
  if (parsed.count("trace")) {
    flags.trace = parsed["trace"].as<std::string>();
    if (flags.trace.empty()) MERIDIAN_USAGE_ERROR("--trace needs a path");
    check_output_directory("trace", flags.trace);
  }
  return flags;
}

std::vector<parallel::StageBlocks> check_pipeline_layout(const PipelineFlags& flags,
                                                         const launcher::ParallelConfig& parallel, int64_t layers,
                                                         int64_t batch, int64_t grad_accum) {
  const int pp = parallel.grid.pp;
  if (batch % flags.micro_batches != 0)
    MERIDIAN_USAGE_ERROR("--batch ", batch, " does not split into --micro-batches ", flags.micro_batches,
                         " equal micro-batches (the batch must be divisible by it)");
  try {
    // With --grad-accum K the schedule runs K·M micro-batches per step.
    parallel::check_schedule_shape(flags.schedule, {pp, flags.virtual_stages,
                                                    static_cast<int>(grad_accum) * flags.micro_batches});
    return parallel::partition_blocks(layers, pp * flags.virtual_stages, flags.split);
  } catch (const Error& e) {
    MERIDIAN_USAGE_ERROR("--pp ", pp, " --schedule ", parallel::schedule_name(flags.schedule), " --virtual-stages ",
                         flags.virtual_stages, " --micro-batches ", flags.micro_batches,
                         grad_accum > 1 ? " (x --grad-accum " + std::to_string(grad_accum) + ")" : std::string(),
                         ": ", e.what());
  }
}

std::string trace_path_for_rank(const std::string& path, int rank) {
  const std::filesystem::path p(path);
  const std::string tag = ".rank" + std::to_string(rank);
  if (!p.has_extension()) return path + tag;
  return (p.parent_path() / (p.stem().string() + tag + p.extension().string())).string();
}

}  // namespace meridian::train

// train_gpt2: trains GPT-2 (a preset, or weights from an llm.c checkpoint) on raw text or llm.c
// token shards. One process, or data-, tensor- and pipeline-parallel under mpirun. See README.md for the
// commands.
#include <iostream>

#include "device_trainer.h"
#include "launcher/run_main.h"
#include "launcher/usage_error.h"
#include "pipeline_options.h"
#include "pipeline_trainer.h"
#include "trainer.h"

int main(int argc, char** argv) {
  using namespace meridian;
  return launcher::run_main(argc, argv, [](launcher::Runtime& runtime, int program_argc, char** program_argv) {
    cxxopts::Options cli = train::make_train_cli();
    launcher::add_parallel_options(cli);
    train::add_pipeline_options(cli);
    const cxxopts::ParseResult parsed = train::parse_command_line(cli, program_argc, program_argv);
    if (parsed.count("help")) {
      if (runtime.world_rank() == 0) std::cout << cli.help() << std::endl;
      return 0;
    }
    const train::TrainOptions options = train::read_train_options(parsed);
    const launcher::ParallelConfig parallel = launcher::parse_parallel_config(parsed, runtime.world_size());
    const train::PipelineFlags pipeline = train::read_pipeline_options(parsed, parallel);
    const bool on_gpu = parallel.device == launcher::DeviceKind::cuda;
    runtime.configure(parallel);  // with --device cuda: binds cuda:local_rank, or fails naming why
    parallel::ProcessGrid grid(runtime.world(), parallel.grid);
    if (parallel.grid.pp > 1) return train::train_pipelined(options, pipeline, parallel, runtime, grid, runtime.device());
    if (on_gpu) return train::train_on_device(options, parallel, runtime, grid, runtime.device());
    return train::train(options, parallel, runtime, grid);
  });
}

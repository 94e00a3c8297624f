#pragma once
// run_main: the entry every Meridian program goes through.
//
//   int main(int argc, char** argv) {
//     return meridian::launcher::run_main(argc, argv, [](Runtime& runtime, int argc, char** argv) {
//       cxxopts::Options options("train", "...");
//       add_parallel_options(options);
//       const auto parsed = options.parse(argc, argv);
//       const ParallelConfig config = parse_parallel_config(parsed, runtime.world_size());
//       runtime.configure(config);
//       parallel::ProcessGrid grid(runtime.world(), config.grid);
//       for (int step = 0; step < steps && !runtime.agree_to_stop(); ++step) { ... }
//       return 0;
//     });
//   }
//
// What it guarantees:
//  - MPI is initialised before `program` runs and finalised after it returns normally;
//  - an exception escaping `program` on any rank prints "rank R: <what>" and aborts the whole job
//    (MPI_Abort), so no rank is left hanging in a collective;
//  - a UsageError or a cxxopts parse error (the same on every rank) is printed once by rank 0 and
//    every rank exits with status 2.
#include <functional>

#include "launcher/runtime.h"

namespace meridian::launcher {

using ProgramMain = std::function<int(Runtime& runtime, int argc, char** argv)>;

int run_main(int argc, char** argv, const ProgramMain& program);

}  // namespace meridian::launcher

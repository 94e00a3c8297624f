// launcher_fault_test: a small distributed program whose misbehaviour is chosen by flags, so that
// the launcher's guarantees can be checked on a real mpirun job (see run_job.sh, CMakeLists.txt):
//
//   --mode ok           configure, print each rank's binding, exit 0
//   --mode throw        rank --fail-rank throws; the others wait in a collective for it
//   --mode stuck        rank 0 all-reduces on the world, the others never do (watchdog)
//   --mode steps        a training-like loop that stops cleanly, on every rank at the same step,
//                       after a stop signal (Runtime::agree_to_stop between steps)
//   --mode ignore-stop  a loop that never checks for stop requests (grace period, second signal)
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <thread>

#include "launcher/log.h"
#include "launcher/parallel_options.h"
#include "launcher/run_main.h"
#include "launcher/usage_error.h"
#include "parallel/process_grid.h"

namespace {

using namespace meridian;
using namespace meridian::launcher;

int run_steps(Runtime& runtime, int steps, std::chrono::milliseconds step_time) {
  std::fprintf(stderr, "rank %d: running\n", runtime.world_rank());
  for (int step = 0; step < steps; ++step) {
    if (runtime.agree_to_stop()) {
      // Prove the agreement: every rank must report the same step.
      Tensor lowest = Tensor::full({1}, -step, DType::i32);
      Tensor highest = Tensor::full({1}, step, DType::i32);
      runtime.world()->all_reduce(lowest, comm::ReduceOp::max)->wait();
      runtime.world()->all_reduce(highest, comm::ReduceOp::max)->wait();
      if (-lowest.data<int32_t>()[0] != highest.data<int32_t>()[0])
        MERIDIAN_FAIL("ranks stopped at different steps");
      std::fprintf(stderr, "rank %d: stopped cleanly at step %d\n", runtime.world_rank(), step);
      return 0;
    }
    log_info("step ", step);
    std::this_thread::sleep_for(step_time);
  }
  std::fprintf(stderr, "rank %d: finished all %d steps without a stop request\n",
               runtime.world_rank(), steps);
  return 0;
}

int program(Runtime& runtime, int argc, char** argv) {
  cxxopts::Options options("launcher_fault_test", "exercises the launcher's failure handling");
  add_parallel_options(options);
  // clang-format off
  options.add_options()
      ("mode", "ok, throw, stuck, steps or ignore-stop",
       cxxopts::value<std::string>()->default_value("ok"))
      ("fail-rank", "the rank that throws in --mode throw",
       cxxopts::value<int>()->default_value("1"))
      ("steps", "steps in --mode steps", cxxopts::value<int>()->default_value("600"))
      ("step-ms", "milliseconds per step", cxxopts::value<int>()->default_value("100"));
  // clang-format on
  const auto parsed = options.parse(argc, argv);
  const ParallelConfig config = parse_parallel_config(parsed, runtime.world_size());
  runtime.configure(config);
  parallel::ProcessGrid grid(runtime.world(), config.grid);

  const std::string mode = parsed["mode"].as<std::string>();
  const int rank = runtime.world_rank();
  if (mode == "ok") {
    log_info("grid ", config.grid.to_string(), ", zero ", config.zero_stage);
    log_warn("bound to ", runtime.device().to_string(), " on ", runtime.hostname(), " (local rank ",
             runtime.local_rank(), " of ", runtime.local_size(), ")");
    return 0;
  }
  if (mode == "throw") {
    if (rank == parsed["fail-rank"].as<int>()) MERIDIAN_FAIL("injected failure on rank ", rank);
    runtime.world()->barrier()->wait();  // never completes: the failing rank does not arrive
    return 0;
  }
  if (mode == "stuck") {
    if (rank == 0) {
      Tensor gradients = Tensor::zeros({1024});
      runtime.world()->all_reduce(gradients, comm::ReduceOp::sum)->wait();
    } else {
      std::this_thread::sleep_for(std::chrono::minutes(5));  // never joins the all_reduce
    }
    return 0;
  }
  const auto step_time = std::chrono::milliseconds(parsed["step-ms"].as<int>());
  if (mode == "steps") return run_steps(runtime, parsed["steps"].as<int>(), step_time);
  if (mode == "ignore-stop") {
    std::fprintf(stderr, "rank %d: running\n", rank);
    for (;;) std::this_thread::sleep_for(step_time);
  }
  MERIDIAN_USAGE_ERROR("--mode ", mode, ": expected ok, throw, stuck, steps or ignore-stop");
}

}  // namespace

int main(int argc, char** argv) { return meridian::launcher::run_main(argc, argv, program); }

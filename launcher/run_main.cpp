#include "launcher/run_main.h"

#include <mpi.h>

#include <cstdio>
#include <cxxopts.hpp>
#include <memory>

#include "launcher/abort_job.h"
#include "launcher/usage_error.h"

namespace meridian::launcher {
namespace {

constexpr int kUsageExitCode = 2;

[[noreturn]] void abort_after_exception(const char* what) { abort_job(what, 1); }

}  // namespace

int run_main(int argc, char** argv, const ProgramMain& program) {
  std::unique_ptr<Runtime> runtime;
  try {
    runtime = std::make_unique<Runtime>(argc, argv);
  } catch (const std::exception& error) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) abort_after_exception(error.what());
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }

  int exit_code = 0;
  try {
    exit_code = program(*runtime, argc, argv);
  } catch (const UsageError& error) {
    runtime->finish_after_usage_error(error.what());
    return kUsageExitCode;  // `runtime` finalises MPI on the way out
  } catch (const cxxopts::exceptions::exception& error) {
    runtime->finish_after_usage_error(error.what());
    return kUsageExitCode;
  } catch (const std::exception& error) {
    abort_after_exception(error.what());
  } catch (...) {
    abort_after_exception("unknown exception (not derived from std::exception)");
  }
  runtime.reset();
  return exit_code;
}

}  // namespace meridian::launcher

#include "launcher/abort_job.h"

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "parallel/comm/world_rank.h"

namespace meridian::launcher {

void abort_job(const std::string& message, int exit_code) {
  static std::atomic<bool> aborting{false};
  if (aborting.exchange(true)) {
    // Another thread is already ending the job; this one only waits for it.
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::fprintf(stderr, "rank %d: %s\n", comm::world_rank_for_messages(), message.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  int initialized = 0;
  int finalized = 0;
  const bool mpi_running = MPI_Initialized(&initialized) == MPI_SUCCESS && initialized &&
                           MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized;
  if (mpi_running) MPI_Abort(MPI_COMM_WORLD, exit_code);
  // Reached without MPI (nothing else to stop), or if MPI_Abort failed to end this process.
  std::_Exit(exit_code);
}

}  // namespace meridian::launcher

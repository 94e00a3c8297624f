#pragma once
// Runtime: the process's distributed environment, one per process, alive for the whole program
// (run_main creates it). It initialises MPI (MPI_THREAD_MULTIPLE: comm threads of several groups,
// the watchdog and the caller may be inside MPI at once), knows this rank's place (world rank and
// size, node-local rank and size from MPI_COMM_TYPE_SHARED, host name), owns the world
// Communicator and the watchdog every group shares, binds the rank's device, and receives stop
// signals. Its destructor finalises MPI.
#include <chrono>
#include <memory>
#include <string>

#include "core/device.h"
#include "launcher/parallel_options.h"
#include "parallel/comm/communicator.h"
#include "parallel/comm/watchdog.h"

namespace meridian::launcher {

class StopSignals;

class Runtime {
 public:
  // Initialises MPI; throws if MPI cannot give MPI_THREAD_MULTIPLE or a Runtime already exists.
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }  // among the ranks on this node
  int local_size() const { return local_size_; }
  const std::string& hostname() const { return hostname_; }

  // The group of all ranks ("world", MPI backend). Build the tp/dp/pp groups from it with
  // parallel::ProcessGrid.
  const std::shared_ptr<comm::Communicator>& world() const { return world_; }
  // Shared by every communicator split from world(); NCCL communicators take it too.
  const std::shared_ptr<comm::Watchdog>& watchdog() const { return watchdog_; }

  // Applies the parallel flags: the watchdog's timeout, per-rank log files, the stop grace period
  // and the device binding. Call once the flags are parsed.
  void configure(const ParallelConfig& config);
  Device device() const { return device_; }  // cpu until configure() binds a GPU

  // True once this rank received SIGTERM, SIGINT or SIGUSR1. Ranks can receive it at different
  // steps; to stop together, call agree_to_stop() at the same point on every rank instead.
  bool stop_requested() const;
  // Collective over the world: true on every rank when any rank has a stop request.
  bool agree_to_stop();

  // For run_main: every rank threw the same UsageError. Rank 0 prints it; the ranks confirm they
  // all got here (non-blocking barrier, bounded wait) and the caller exits with status 2. A rank
  // that does not arrive means the error was not uniform: the job is aborted instead.
  void finish_after_usage_error(const std::string& message);

 private:
  int world_rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::string hostname_;
  Device device_ = Device::cpu();
  std::shared_ptr<comm::Watchdog> watchdog_;
  std::shared_ptr<comm::Communicator> world_;
  std::unique_ptr<StopSignals> stop_signals_;
};

}  // namespace meridian::launcher

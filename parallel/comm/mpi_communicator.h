#pragma once
// The MPI backend: collectives on CPU tensors. Each communicator owns a private MPI communicator
// (a duplicate or split, never MPI_COMM_WORLD itself, so nothing else can interleave messages with
// it) and a comm thread that runs its operations in issue order (see mpi_worker.h).
//
// Needs MPI initialised with MPI_THREAD_MULTIPLE: the comm threads of several groups, the caller
// and the watchdog may all be inside MPI at once. The launcher's Runtime does that.
#include <memory>

#include "parallel/comm/communicator.h"
#include "parallel/comm/watchdog.h"

namespace meridian::comm {

// The "world" group over every rank of MPI_COMM_WORLD. Groups split from it share `watchdog`.
std::shared_ptr<Communicator> create_mpi_world_communicator(std::shared_ptr<Watchdog> watchdog);

}  // namespace meridian::comm

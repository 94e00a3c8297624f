#pragma once
// The calling process's rank in MPI_COMM_WORLD, for error messages ("rank 3: ..."), available to
// code that must not include mpi.h. -1 before MPI_Init or after MPI_Finalize.
namespace meridian::comm {

int world_rank_for_messages();

}  // namespace meridian::comm

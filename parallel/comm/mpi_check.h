#pragma once
// MERIDIAN_MPI_CHECK(call): every MPI call's return code is checked. On failure it throws
// meridian::Error naming the call, MPI's description of the error, the world rank and the source
// location. Communicators are set to MPI_ERRORS_RETURN so errors come back here instead of MPI
// aborting on its own. Include only from parallel/comm/ and launcher/ (the layers that know MPI).
#include <mpi.h>

namespace meridian::comm::checks {

[[noreturn]] void throw_mpi_error(const char* call, int status, const char* file, int line);

}  // namespace meridian::comm::checks

#define MERIDIAN_MPI_CHECK(call)                                                                  \
  do {                                                                                            \
    const int meridian_mpi_status_ = (call);                                                      \
    if (meridian_mpi_status_ != MPI_SUCCESS)                                                      \
      ::meridian::comm::checks::throw_mpi_error(#call, meridian_mpi_status_, __FILE__, __LINE__); \
  } while (0)

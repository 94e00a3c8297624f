#include "parallel/comm/mpi_check.h"

#include <filesystem>
#include <string>

#include "core/error.h"
#include "parallel/comm/world_rank.h"

namespace meridian::comm {

int world_rank_for_messages() {
  int initialized = 0;
  int finalized = 0;
  if (MPI_Initialized(&initialized) != MPI_SUCCESS || !initialized) return -1;
  if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return -1;
  int rank = -1;
  if (MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS) return -1;
  return rank;
}

namespace checks {

void throw_mpi_error(const char* call, int status, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(status, text, &length) != MPI_SUCCESS) length = 0;
  throw Error(detail::concat(call, " failed on rank ", world_rank_for_messages(), ": ",
                             length > 0 ? std::string(text, static_cast<size_t>(length))
                                        : detail::concat("MPI error ", status),
                             " [", std::filesystem::path(file).filename().string(), ":", line,
                             "]"));
}

}  // namespace checks
}  // namespace meridian::comm

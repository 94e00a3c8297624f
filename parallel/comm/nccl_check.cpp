#include "parallel/comm/nccl_check.h"

#include <filesystem>

#include "core/error.h"
#include "parallel/comm/world_rank.h"

namespace meridian::comm::checks {
namespace {

std::string location(const char* file, int line) {
  return detail::concat(" [", std::filesystem::path(file).filename().string(), ":", line, "]");
}

}  // namespace

void throw_nccl_error(const char* call, ncclResult_t status, const char* file, int line) {
  throw Error(detail::concat(call, " failed on rank ", world_rank_for_messages(), ": ",
                             ncclGetErrorString(status), " (", ncclGetLastError(nullptr), ")",
                             location(file, line)));
}

void throw_cuda_error(const char* call, cudaError_t status, const char* file, int line) {
  throw Error(detail::concat(call, " failed on rank ", world_rank_for_messages(), ": ",
                             cudaGetErrorName(status), ": ", cudaGetErrorString(status),
                             location(file, line)));
}

}  // namespace meridian::comm::checks

#include "core/error.h"

#include <filesystem>

namespace meridian::detail {

void throw_internal(const char* file, int line, const std::string& message) {
  throw Error(concat(message, " [", std::filesystem::path(file).filename().string(), ":", line, "]"));
}

}  // namespace meridian::detail

#pragma once
// UsageError: the program was called wrongly (bad flags, a layout that does not fit the world).
// Every rank parses the same command line the same way, so every rank throws it; run_main then
// prints the message once (rank 0) and every rank exits with status 2 instead of aborting the job.
#include "core/error.h"

namespace meridian::launcher {

class UsageError : public Error {
 public:
  using Error::Error;
};

// Throws UsageError with the concatenated message.
#define MERIDIAN_USAGE_ERROR(...) \
  throw ::meridian::launcher::UsageError(::meridian::detail::concat(__VA_ARGS__))

}  // namespace meridian::launcher

#pragma once
// Errors carry context (what, where, which shape/file/flag) and are thrown, never exit()ed: the
// launcher catches them on every rank and ends the job cleanly.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace meridian {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
[[noreturn]] void throw_internal(const char* file, int line, const std::string& message);
}  // namespace detail

}  // namespace meridian

// Internal invariant: throws meridian::Error naming the failed condition and the source location.
#define MERIDIAN_CHECK(cond, ...)                                                           \
  do {                                                                                      \
    if (!(cond))                                                                            \
      ::meridian::detail::throw_internal(                                                   \
          __FILE__, __LINE__, ::meridian::detail::concat(#cond " failed: ", __VA_ARGS__));  \
  } while (0)

// Error for the caller (bad argument, bad file): the message stands on its own.
#define MERIDIAN_FAIL(...) throw ::meridian::Error(::meridian::detail::concat(__VA_ARGS__))

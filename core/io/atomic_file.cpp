#include "core/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/error.h"

namespace meridian::io {

namespace {

std::string describe_errno() { return std::strerror(errno); }

class FdSink final : public FileSink {
 public:
  FdSink(int fd, const std::filesystem::path& target) : fd_(fd), target_(target) {}

  void write(const void* data, size_t nbytes) override {
    const char* bytes = static_cast<const char*>(data);
    while (nbytes > 0) {
      const ssize_t written = ::write(fd_, bytes, nbytes);
      if (written < 0) {
        if (errno == EINTR) continue;
        MERIDIAN_FAIL("writing '", target_.string(), "': ", describe_errno());
      }
      bytes += written;
      nbytes -= static_cast<size_t>(written);
    }
  }

 private:
  int fd_;
  const std::filesystem::path& target_;
};

// A name no other writer (thread or process) in the directory uses at the same time.
std::filesystem::path temporary_path_for(const std::filesystem::path& target) {
  static std::atomic<uint64_t> counter{0};
  // Hidden, and marked as ours, so a crash leaves a file nobody mistakes for the real one.
  std::string name = ".";
  name.append(target.filename().string())
      .append(".tmp.")
      .append(std::to_string(::getpid()))
      .append(".")
      .append(std::to_string(counter++));
  return target.parent_path() / name;
}

std::filesystem::path directory_of(const std::filesystem::path& path) {
  return path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
}

}  // namespace

void fsync_directory(const std::filesystem::path& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    MERIDIAN_FAIL("cannot open directory '", directory.string(),
                  "' to fsync it: ", describe_errno());
  const int result = ::fsync(fd);
  const int fsync_errno = errno;
  ::close(fd);
  // Some filesystems cannot fsync a directory (EINVAL); there is nothing more to make durable.
  if (result != 0 && fsync_errno != EINVAL)
    MERIDIAN_FAIL("fsync of directory '", directory.string(),
                  "' failed: ", std::strerror(fsync_errno));
}

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(FileSink&)>& write_contents) {
  if (path.filename().empty()) MERIDIAN_FAIL("cannot write '", path.string(), "': not a file name");
  const std::filesystem::path directory = directory_of(path);
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error))
    MERIDIAN_FAIL("cannot write '", path.string(), "': directory '", directory.string(),
                  "' does not exist");

  const std::filesystem::path temporary = temporary_path_for(path);
  // 0644 before the umask, like any file the user creates; O_EXCL so we never clobber a stranger.
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    MERIDIAN_FAIL("cannot write '", path.string(), "': creating temporary '", temporary.string(),
                  "' failed: ", describe_errno());
  try {
    FdSink sink(fd, path);
    write_contents(sink);
    if (::fsync(fd) != 0)
      MERIDIAN_FAIL("fsync of '", temporary.string(), "' failed: ", describe_errno());
    const int close_result = ::close(fd);
    fd = -1;
    if (close_result != 0)
      MERIDIAN_FAIL("closing '", temporary.string(), "' failed: ", describe_errno());
    if (std::rename(temporary.c_str(), path.c_str()) != 0)
      MERIDIAN_FAIL("renaming '", temporary.string(), "' to '", path.string(),
                    "' failed: ", describe_errno());
  } catch (...) {
    if (fd >= 0) ::close(fd);
    std::filesystem::remove(temporary, error);  // best effort; the original error matters more
    throw;
  }
  // The new file is in place now; a failure here only leaves its durability across a power loss
  // in doubt, which the caller still needs to hear about.
  fsync_directory(directory);
}

void write_file_atomically(const std::filesystem::path& path, std::string_view contents) {
  write_file_atomically(path,
                        [&](FileSink& sink) { sink.write(contents.data(), contents.size()); });
}

}  // namespace meridian::io

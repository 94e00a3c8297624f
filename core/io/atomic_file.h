#pragma once
// Replacing a file so that a crash, a full disk or an exception never leaves a half-written file
// where a good one was: write a temporary next to the target, fsync it, rename it over the target
// (atomic on POSIX within one filesystem), then fsync the directory so the rename itself survives
// a power loss.
#include <cstddef>
#include <filesystem>
#include <functional>
#include <span>
#include <string_view>

namespace meridian::io {

// Where a writer callback puts the file's bytes. write() throws on any error (e.g. disk full).
class FileSink {
 public:
  virtual void write(const void* data, size_t nbytes) = 0;
  template <class T>
  void write_array(std::span<const T> values) {
    write(values.data(), values.size_bytes());
  }

 protected:
  ~FileSink() = default;
};

// Calls `write_contents` on a temporary in path's directory, then moves it over `path`. If anything
// throws (the callback included), the temporary is removed and the previous file is left as it was.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(FileSink&)>& write_contents);

// Convenience for contents already in memory.
void write_file_atomically(const std::filesystem::path& path, std::string_view contents);

// Makes entries created or renamed in `directory` durable. Checkpoint writers that build a whole
// temporary directory and rename it call this on the parent.
void fsync_directory(const std::filesystem::path& directory);

}  // namespace meridian::io

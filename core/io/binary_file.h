#pragma once
// Reading the little-endian binary formats llm.c writes (token shards, GPT-2 checkpoints, the
// tokenizer). Every failure names the kind of file and its path, so a bad path in a launch script
// reads as such instead of as a crash deep inside training.
#include <bit>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"

namespace meridian::io {

// The formats are little-endian and read by copying bytes straight into memory.
static_assert(std::endian::native == std::endian::little,
              "meridian::io assumes a little-endian host");

// Every llm.c file format starts with a header of 256 32-bit words.
inline constexpr int kLlmcHeaderWords = 256;

class BinaryFileReader {
 public:
  // Opens `path` for reading; `kind` ("data file", "checkpoint", ...) starts every error message.
  BinaryFileReader(std::filesystem::path path, std::string_view kind);

  const std::filesystem::path& path() const { return path_; }
  uint64_t size() const { return size_; }

  // Reads exactly `nbytes` into `out`; `what` names the part being read if the file ends early.
  void read_bytes(void* out, size_t nbytes, std::string_view what);
  template <class T>
  void read_array(T* out, size_t count, std::string_view what) {
    read_bytes(out, count * sizeof(T), what);
  }

  // Throws an Error "<kind> '<path>': <parts...>".
  template <class... Args>
  [[noreturn]] void fail(Args&&... parts) const {
    MERIDIAN_FAIL(kind_, " '", path_.string(), "': ", std::forward<Args>(parts)...);
  }

 private:
  struct CloseFile {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  std::filesystem::path path_;
  std::string kind_;
  std::unique_ptr<std::FILE, CloseFile> file_;
  uint64_t size_ = 0;
  uint64_t position_ = 0;
};

// a * b for sizes computed from untrusted headers; overflow means the header is garbage.
int64_t checked_multiply(int64_t a, int64_t b, std::string_view what);

}  // namespace meridian::io

#include "core/io/binary_file.h"

#include <cerrno>
#include <cstring>
#include <system_error>

namespace meridian::io {

BinaryFileReader::BinaryFileReader(std::filesystem::path path, std::string_view kind)
    : path_(std::move(path)), kind_(kind) {
  std::error_code error;
  const auto status = std::filesystem::status(path_, error);
  if (!std::filesystem::exists(status)) fail("does not exist");
  if (std::filesystem::is_directory(status)) fail("is a directory, not a file");
  file_.reset(std::fopen(path_.c_str(), "rb"));
  if (!file_) fail("cannot open for reading: ", std::strerror(errno));
  size_ = std::filesystem::file_size(path_, error);
  if (error) fail("cannot read its size: ", error.message());
}

void BinaryFileReader::read_bytes(void* out, size_t nbytes, std::string_view what) {
  const size_t got = std::fread(out, 1, nbytes, file_.get());
  if (got != nbytes) {
    if (std::ferror(file_.get())) fail("read error in ", what, ": ", std::strerror(errno));
    fail("truncated: ", what, " needs ", nbytes, " bytes at offset ", position_, ", file holds ",
         size_, " bytes");
  }
  position_ += nbytes;
}

int64_t checked_multiply(int64_t a, int64_t b, std::string_view what) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product))
    MERIDIAN_FAIL(what, ": ", a, " x ", b, " overflows a 64-bit size");
  return product;
}

}  // namespace meridian::io

#pragma once
// Shared by the io tests: a scratch directory that cleans itself up, raw file writing for building
// malformed files, and checking that an error's message says what it should.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace meridian::io::testing {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("meridian_io_" + std::string(test ? test->name() : "test") + "_" +
             std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::filesystem::path& path, const void* data, size_t nbytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(nbytes));
  ASSERT_TRUE(out.good()) << "cannot write test file " << path;
}

inline void append_bytes(const std::filesystem::path& path, const void* data, size_t nbytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(nbytes));
  ASSERT_TRUE(out.good()) << "cannot append to test file " << path;
}

inline std::string read_all(const std::filesystem::path& path) {
  std::string bytes(std::filesystem::file_size(path), '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

// Overwrites the 32-bit word `index` of a file's header.
inline void patch_word(const std::filesystem::path& path, int index, int32_t value) {
  std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
  file.seekp(static_cast<std::streamoff>(index) * 4);
  file.write(reinterpret_cast<const char*>(&value), sizeof(value));
  ASSERT_TRUE(file.good());
}

// Runs `action`, expecting a meridian::Error whose message holds every one of `parts`.
inline void expect_error(const std::function<void()>& action,
                         std::initializer_list<std::string_view> parts) {
  try {
    action();
  } catch (const Error& error) {
    const std::string message = error.what();
    for (std::string_view part : parts)
      EXPECT_NE(message.find(part), std::string::npos)
          << "error message \"" << message << "\" does not mention \"" << part << "\"";
    return;
  } catch (const std::exception& other) {
    ADD_FAILURE() << "expected meridian::Error, got another exception: " << other.what();
    return;
  }
  ADD_FAILURE() << "expected an error mentioning \"" << *parts.begin() << "\", none was thrown";
}

}  // namespace meridian::io::testing

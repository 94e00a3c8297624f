#include "core/io/file_pattern.h"

#include <algorithm>
#include <system_error>

#include "core/error.h"

namespace meridian::io {

bool matches_wildcard(std::string_view pattern, std::string_view name) {
  // Greedy matching with one backtrack point: the last `*` seen absorbs one more character
  // whenever the rest fails to match. Linear in practice, never exponential.
  size_t p = 0, n = 0;
  size_t star = std::string_view::npos, star_match = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_match = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++star_match;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool has_wildcard(std::string_view path_or_pattern) {
  return path_or_pattern.find_first_of("*?") != std::string_view::npos;
}

std::vector<std::filesystem::path> expand_file_pattern(const std::string& path_or_pattern,
                                                       std::string_view kind) {
  const std::filesystem::path pattern(path_or_pattern);
  std::error_code error;
  if (!has_wildcard(path_or_pattern)) {
    if (!std::filesystem::exists(pattern, error))
      MERIDIAN_FAIL(kind, " '", path_or_pattern, "': does not exist");
    return {pattern};
  }
  const std::string name_pattern = pattern.filename().string();
  const std::filesystem::path directory =
      pattern.parent_path().empty() ? std::filesystem::path(".") : pattern.parent_path();
  if (has_wildcard(directory.string()))
    MERIDIAN_FAIL(kind, " pattern '", path_or_pattern,
                  "': wildcards are only supported in the file name, not in directories");
  if (!std::filesystem::is_directory(directory, error))
    MERIDIAN_FAIL(kind, " pattern '", path_or_pattern, "': directory '", directory.string(),
                  "' does not exist");

  std::vector<std::filesystem::path> matches;
  for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
    if (entry.is_regular_file(error) &&
        matches_wildcard(name_pattern, entry.path().filename().string()))
      matches.push_back(pattern.parent_path() / entry.path().filename());
  }
  if (error)
    MERIDIAN_FAIL(kind, " pattern '", path_or_pattern, "': cannot list '", directory.string(),
                  "': ", error.message());
  if (matches.empty()) MERIDIAN_FAIL(kind, " pattern '", path_or_pattern, "': no file matches");
  // Directory order is arbitrary; every rank must concatenate shards in the same order.
  std::sort(matches.begin(), matches.end());
  return matches;
}

}  // namespace meridian::io

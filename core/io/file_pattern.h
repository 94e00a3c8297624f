#pragma once
// Glob patterns for data files ("data/fineweb_train_*.bin"), so a launch script can name a whole
// set of shards without the shell expanding it differently on every rank.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::io {

// True when `name` matches `pattern`, where `*` matches any run of characters (including none)
// and `?` exactly one; every other character matches itself.
bool matches_wildcard(std::string_view pattern, std::string_view name);

bool has_wildcard(std::string_view path_or_pattern);

// The files matching a pattern with `*` and `?` in its last component, sorted by name; a path
// without wildcards names one file, which must exist. `kind` ("data file") starts error messages;
// no match is an error naming the pattern.
std::vector<std::filesystem::path> expand_file_pattern(const std::string& path_or_pattern,
                                                       std::string_view kind);

}  // namespace meridian::io

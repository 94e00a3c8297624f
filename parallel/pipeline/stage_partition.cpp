#include "parallel/pipeline/stage_partition.h"

#include <charconv>
#include <numeric>
#include <string>

#include "core/error.h"

namespace meridian::parallel {

std::vector<int64_t> parse_stage_split(std::string_view text) {
  std::vector<int64_t> counts;
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    const std::string_view item = text.substr(begin, comma == std::string_view::npos ? text.size() - begin : comma - begin);
    int64_t value = 0;
    const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || error != std::errc() || end != item.data() + item.size())
      MERIDIAN_FAIL("pipeline split '", text, "': '", item, "' is not a whole number of blocks (expected e.g. 3,3,2,4)");
    counts.push_back(value);
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  return counts;
}

std::vector<StageBlocks> partition_blocks(int64_t layers, int stages, const std::vector<int64_t>& split) {
  MERIDIAN_CHECK(stages >= 1, "partition_blocks: ", stages, " stages");
  std::vector<int64_t> counts = split;
  if (counts.empty()) {
    if (layers < stages)
      MERIDIAN_FAIL("pipeline: ", layers, " layers cannot fill ", stages,
                    " stages (pp x virtual stages): every stage needs at least one block");
    for (int s = 0; s < stages; ++s) counts.push_back(layers / stages + (s < layers % stages ? 1 : 0));
  } else {
    if (static_cast<int64_t>(counts.size()) != stages)
      MERIDIAN_FAIL("pipeline split has ", counts.size(), " entries but there are ", stages,
                    " stages (pp x virtual stages): give one block count per stage");
    for (size_t s = 0; s < counts.size(); ++s)
      if (counts[s] <= 0)
        MERIDIAN_FAIL("pipeline split gives stage ", s, " ", counts[s], " blocks: every stage needs at least one");
    const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
    if (total != layers)
      MERIDIAN_FAIL("pipeline split sums to ", total, " blocks but the model has ", layers, " layers");
  }
  std::vector<StageBlocks> stages_out;
  int64_t next = 0;
  for (int64_t count : counts) {
    stages_out.push_back({next, count});
    next += count;
  }
  return stages_out;
}

}  // namespace meridian::parallel

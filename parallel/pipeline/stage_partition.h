#pragma once
// How a model's L blocks are split over the pipeline's global stages. With pp ranks and V virtual
// stages (chunks) per rank there are S = pp·V global stages; global stage s is chunk s / pp of rank
// s mod pp, so with V > 1 every rank holds V separate slices of the model (interleaved schedule).
//
// Balanced: every stage gets ⌊L/S⌋ blocks and the first L mod S stages one more. Explicit: a list
// such as "3,3,2,4" (--pp-split), one positive count per global stage, summing to L.
#include <cstdint>
#include <string_view>
#include <vector>

namespace meridian::parallel {

struct StageBlocks {
  int64_t first_block = 0;
  int64_t num_blocks = 0;
};

// Parses "3,3,2,4" into counts; throws meridian::Error naming the text on anything else.
std::vector<int64_t> parse_stage_split(std::string_view text);

// The blocks of each of `stages` global stages: balanced when `split` is empty, else `split`.
// Throws meridian::Error when a stage would get no block (layers < stages), or when `split` does not
// have one positive entry per stage or does not sum to `layers`.
std::vector<StageBlocks> partition_blocks(int64_t layers, int stages, const std::vector<int64_t>& split = {});

}  // namespace meridian::parallel

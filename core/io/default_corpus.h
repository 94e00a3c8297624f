#pragma once
// Meridian's own small training text, so examples and tests can train a character-level model
// without downloading anything. It is generated, not copied: a small probabilistic grammar over a
// few hundred common English words writes short stories (titles, narrative paragraphs, dialogue)
// from the counter-based RNG with a fixed seed, so the text is identical on every run and machine.
// A character-level model trained on it learns the words first, then some grammar.
#include <cstddef>
#include <string>

namespace meridian::io {

// Generation stops at the first story boundary past this many bytes (about 400 KB in all).
inline constexpr size_t kDefaultCorpusTargetBytes = 400'000;

std::string default_corpus();

}  // namespace meridian::io

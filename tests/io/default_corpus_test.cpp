#include "core/io/default_corpus.h"

#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <sstream>

#include "core/io/token_dataset.h"

namespace meridian::io {
namespace {

TEST(DefaultCorpus, IsDeterministic) {
  const std::string first = default_corpus();
  const std::string second = default_corpus();
  EXPECT_EQ(first, second);
}

// No bound on the time it takes: timed tests fail on a busy or instrumented machine (under the debug
// preset's sanitizers it took 1.3 s); speed belongs in bench/.
TEST(DefaultCorpus, SizeIsInRange) {
  const std::string text = default_corpus();
  EXPECT_GE(text.size(), 300'000u);
  EXPECT_LE(text.size(), 500'000u);
}

TEST(DefaultCorpus, IsMostlyLowercaseLettersSpacesAndPunctuation) {
  const std::string text = default_corpus();
  size_t plain = 0, upper = 0;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    ASSERT_TRUE(byte < 128 && (std::isprint(byte) || c == '\n')) << "unexpected byte " << int{byte};
    if (std::islower(byte) || c == ' ' || c == '\n' || std::ispunct(byte)) ++plain;
    if (std::isupper(byte)) ++upper;
  }
  EXPECT_GT(static_cast<double>(plain) / static_cast<double>(text.size()), 0.95);
  EXPECT_GT(upper, 0u);  // sentences and names are capitalised
}

TEST(DefaultCorpus, HasVariedWordsParagraphsAndDialogue) {
  const std::string text = default_corpus();
  std::istringstream words(text);
  std::set<std::string> vocabulary;
  for (std::string word; words >> word;) vocabulary.insert(word);
  EXPECT_GT(vocabulary.size(), 500u);
  EXPECT_NE(text.find("\n\n"), std::string::npos);
  EXPECT_NE(text.find('"'), std::string::npos);
  EXPECT_NE(text.find('?'), std::string::npos);
  EXPECT_NE(text.find(", "), std::string::npos);
  size_t longest_line = 0, line_start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '\n') {
      longest_line = std::max(longest_line, i - line_start);
      line_start = i + 1;
    }
  }
  EXPECT_LE(longest_line, 80u);  // wrapped like prose, so samples read as text
}

TEST(DefaultCorpus, TrainsAsByteLevelTokens) {
  const TokenDataset data = TokenDataset::from_text(default_corpus(), "default corpus");
  EXPECT_LT(data.max_token(), 128);
}

}  // namespace
}  // namespace meridian::io

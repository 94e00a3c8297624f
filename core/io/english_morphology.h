#pragma once
// The few rules of English word forms default_corpus() needs: plurals, verb forms, "a"/"an".
// Irregular forms come from corpus_lexicon.h. Internal to the corpus generator.
#include <string>
#include <string_view>

namespace meridian::io::corpus {

std::string plural_of(std::string_view noun);       // fox -> foxes, child -> children
std::string third_person(std::string_view verb);    // carry -> carries, pick up -> picks up
std::string past_tense(std::string_view verb);      // carry -> carried, take -> took
std::string with_article(std::string_view phrase);  // old fox -> an old fox
std::string capitalized(std::string_view text);     // first letter upper case
std::string title_cased(std::string_view words);    // the old mill -> The Old Mill

}  // namespace meridian::io::corpus

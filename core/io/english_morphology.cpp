#include "core/io/english_morphology.h"

#include "core/io/corpus_lexicon.h"

namespace meridian::io::corpus {

namespace {

bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

bool consonant_then_y(std::string_view word) {
  return word.size() >= 2 && word.back() == 'y' && !is_vowel(word[word.size() - 2]);
}

bool takes_es(std::string_view word) {
  return word.ends_with("s") || word.ends_with("x") || word.ends_with("ch") || word.ends_with("sh");
}

std::string without_last(std::string_view word) {
  return std::string(word.substr(0, word.size() - 1));
}

// Applies `inflect` to the first word only: "pick up" -> "picked up".
template <class Inflect>
std::string inflect_head(std::string_view verb, Inflect inflect) {
  const size_t space = verb.find(' ');
  if (space == std::string_view::npos) return inflect(verb);
  std::string out = inflect(verb.substr(0, space));
  out.append(verb.substr(space));
  return out;
}

}  // namespace

std::string plural_of(std::string_view noun) {
  for (const auto& [singular, plural] : kIrregularPlurals)
    if (singular == noun) return std::string(plural);
  if (consonant_then_y(noun)) return without_last(noun).append("ies");
  return std::string(noun).append(takes_es(noun) ? "es" : "s");
}

std::string third_person(std::string_view verb) {
  return inflect_head(verb, [](std::string_view head) {
    if (consonant_then_y(head)) return without_last(head).append("ies");
    return std::string(head).append(takes_es(head) || head.ends_with("o") ? "es" : "s");
  });
}

std::string past_tense(std::string_view verb) {
  return inflect_head(verb, [](std::string_view head) {
    for (const auto& [base, past] : kIrregularPasts)
      if (base == head) return std::string(past);
    if (consonant_then_y(head)) return without_last(head).append("ied");
    return std::string(head).append(head.ends_with("e") ? "d" : "ed");
  });
}

std::string with_article(std::string_view phrase) {
  // Only the silent h of "honest" breaks the first-letter rule among the corpus's words.
  const bool vowel_sound =
      (!phrase.empty() && is_vowel(phrase.front())) || phrase.starts_with("honest");
  return std::string(vowel_sound ? "an " : "a ").append(phrase);
}

std::string capitalized(std::string_view text) {
  std::string out(text);
  if (!out.empty() && out.front() >= 'a' && out.front() <= 'z')
    out.front() = static_cast<char>(out.front() - 'a' + 'A');
  return out;
}

std::string title_cased(std::string_view words) {
  std::string out;
  size_t start = 0;
  while (start <= words.size()) {
    size_t end = words.find(' ', start);
    if (end == std::string_view::npos) end = words.size();
    const std::string_view word = words.substr(start, end - start);
    const bool minor = start > 0 && (word == "the" || word == "and" || word == "of");
    if (start > 0) out += ' ';
    out += minor ? std::string(word) : capitalized(word);
    start = end + 1;
  }
  return out;
}

}  // namespace meridian::io::corpus

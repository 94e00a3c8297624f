#include "core/io/default_corpus.h"

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "core/io/corpus_lexicon.h"
#include "core/io/english_morphology.h"
#include "core/random.h"

namespace meridian::io {

namespace {

using namespace corpus;

constexpr uint64_t kCorpusSeed = 20240520;
constexpr size_t kLineWidth = 72;

// Every random choice is the next draw of one counter-based stream, so the text depends on nothing
// but the seed (std::*_distribution output differs between standard libraries).
class Dice {
 public:
  explicit Dice(uint64_t seed) : key_(random::stream_key(seed, "default_corpus")) {}
  bool chance(double probability) { return random::uniform(key_, counter_++) < probability; }
  size_t below(size_t n) {
    const double u = random::uniform(key_, counter_++);
    return std::min(n - 1, static_cast<size_t>(u * static_cast<double>(n)));
  }
  int between(int low, int high) {
    return low + static_cast<int>(below(static_cast<size_t>(high - low + 1)));
  }
  template <class Options>
  std::string pick(const Options& options) {
    return std::string(options[below(options.size())]);
  }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

// Builds a string strictly left to right. Parts here draw random numbers, so the order they are
// evaluated in is the order of the draws: `text << a() << b()` is sequenced since C++17, whereas
// the operands of `a() + b()` may be evaluated in either order, differently by different compilers.
class Text {
 public:
  Text& operator<<(std::string_view part) {
    text_.append(part);
    return *this;
  }
  operator std::string() const { return text_; }

 private:
  std::string text_;
};

struct Actor {
  std::string name;  // "Anna" or "the old miller"
  bool female = false;
  std::string_view subject_pronoun() const { return female ? "she" : "he"; }
  std::string_view possessive() const { return female ? "her" : "his"; }
};

// Who a clause is about: its words, and how its verb agrees.
struct Subject {
  std::string words;
  bool plural = false;
  const Actor* actor = nullptr;  // a story character, who owns things ("his coat")
};

// Breaks a paragraph into lines of at most kLineWidth characters, at spaces.
void append_wrapped(std::string& out, const std::string& paragraph) {
  size_t line_start = 0;
  while (paragraph.size() - line_start > kLineWidth) {
    size_t cut = paragraph.rfind(' ', line_start + kLineWidth);
    if (cut == std::string::npos || cut <= line_start)
      cut = paragraph.find(' ', line_start + kLineWidth);
    if (cut == std::string::npos) break;
    out.append(paragraph, line_start, cut - line_start);
    out += '\n';
    line_start = cut + 1;
  }
  out.append(paragraph, line_start);
}

// A story: a title, then narrative paragraphs and runs of dialogue about two characters, told in
// one tense. Word lists keep sentences plausible: people feed goats, nobody feeds a lamp.
class StoryWriter {
 public:
  explicit StoryWriter(Dice& dice) : dice_(dice) {}

  void write_story(std::string& out) {
    past_ = dice_.chance(0.75);
    hero_ = make_actor();
    do friend_ = make_actor();
    while (friend_.name == hero_.name);
    out += title();
    out += "\n\n";
    const int paragraphs = dice_.between(5, 10);
    for (int i = 0; i < paragraphs; ++i) {
      if (i > 0 && dice_.chance(0.3)) {
        write_dialogue(out);
      } else {
        append_wrapped(out, narrative_paragraph());
        out += "\n\n";
      }
    }
  }

 private:
  // --- people, animals, things, places ----------------------------------------------------------

  Actor make_actor() {
    if (dice_.chance(0.6)) {
      const Character& named = kNames[dice_.below(kNames.size())];
      return {std::string(named.word), named.gender == Gender::female};
    }
    const Character& person = kPeople[dice_.below(kPeople.size())];
    const bool female =
        person.gender == Gender::either ? dice_.chance(0.5) : person.gender == Gender::female;
    return {Text() << "the " << maybe_adjective(kPersonAdjectives, 0.6) << person.word, female};
  }

  template <class Adjectives>
  std::string maybe_adjective(const Adjectives& adjectives, double probability) {
    if (!dice_.chance(probability)) return {};
    return Text() << dice_.pick(adjectives) << " ";
  }

  // "a fox", "the old farmer", "two hungry goats".
  std::string being_phrase(bool& plural) {
    const std::string noun = dice_.chance(0.45)
                                 ? dice_.pick(kAnimals)
                                 : std::string(kPeople[dice_.below(kPeople.size())].word);
    const std::string adjective = maybe_adjective(kPersonAdjectives, 0.4);
    plural = dice_.chance(0.2);
    if (plural) return Text() << dice_.pick(kCounts) << " " << adjective << plural_of(noun);
    if (dice_.chance(0.6)) return Text() << "the " << adjective << noun;
    return with_article(adjective + noun);
  }

  std::string being_object() {
    if (dice_.chance(0.3)) return friend_.name;
    bool plural = false;
    return being_phrase(plural);
  }

  std::string thing_phrase(const Subject& owner) {
    const std::string noun = dice_.pick(kThings);
    const std::string adjective = maybe_adjective(kThingAdjectives, 0.45);
    switch (dice_.below(5)) {
      case 0:
      case 1:
        return Text() << "the " << adjective << noun;
      case 2:
        if (owner.actor) return Text() << owner.actor->possessive() << " " << adjective << noun;
        return Text() << "the " << adjective << plural_of(noun);
      case 3:
        return with_article(adjective + noun);
      default:
        return Text() << "the " << adjective << plural_of(noun);
    }
  }

  std::string place() {
    return Text() << "the " << maybe_adjective(kPlaceAdjectives, 0.35) << dice_.pick(kPlaces);
  }
  std::string place_phrase() { return Text() << dice_.pick(kPrepositions) << " " << place(); }

  Subject subject() {
    const size_t roll = dice_.below(20);
    if (roll < 11) {
      const bool by_name = dice_.chance(0.5);
      return {by_name ? hero_.name : std::string(hero_.subject_pronoun()), false, &hero_};
    }
    if (roll < 15) return {friend_.name, false, &friend_};
    Subject other;
    other.words = being_phrase(other.plural);
    return other;
  }

  // --- verbs ---

  std::string verb(std::string_view base, const Subject& who) const {
    if (past_) return past_tense(base);
    return who.plural ? std::string(base) : third_person(base);
  }
  std::string_view be(const Subject& who) const {
    if (past_) return who.plural ? "were" : "was";
    return who.plural ? "are" : "is";
  }

  // --- clauses and sentences ---

  std::string optional_place(double probability) {
    if (!dice_.chance(probability)) return {};
    return Text() << " " << place_phrase();
  }
  std::string optional_manner(double probability) {
    if (!dice_.chance(probability)) return {};
    return Text() << " " << dice_.pick(kMannerAdverbs);
  }

  std::string simple_clause(const Subject& who) {
    const size_t kind = dice_.below(10);
    Text clause;
    clause << who.words << " ";
    if (dice_.chance(0.12)) clause << dice_.pick(kFrequencyAdverbs) << " ";
    switch (kind) {
      case 0:
      case 1:
      case 2:
        return clause << verb(dice_.pick(kThingVerbs), who) << " " << thing_phrase(who)
                      << optional_place(0.5) << optional_manner(0.2);
      case 3:
      case 4:
        return clause << verb(dice_.pick(kBeingVerbs), who) << " " << being_object()
                      << optional_place(0.4);
      case 5:
        return clause << verb(dice_.pick(kIntransitiveVerbs), who) << optional_manner(0.35)
                      << optional_place(0.6);
      case 6:
        clause << verb(dice_.pick(kMotionVerbs), who);
        if (dice_.chance(0.1)) return clause << " home";
        return clause << " " << dice_.pick(kDirections) << " " << place() << optional_manner(0.2);
      case 7:
        clause << be(who) << " ";
        if (dice_.chance(0.4)) clause << dice_.pick(kDegrees) << " ";
        clause << dice_.pick(kPersonAdjectives);
        if (dice_.chance(0.3)) clause << " and " << dice_.pick(kPersonAdjectives);
        return clause;
      case 8:
        return clause << verb("give", who) << " " << thing_phrase(who) << " to " << being_object();
      default:
        return clause << verb(dice_.pick(kWantVerbs), who) << " to " << dice_.pick(kThingVerbs)
                      << " " << thing_phrase(who);
    }
  }

  // The setting rather than the characters: a place, the weather, what lies about.
  std::string scene_clause() {
    switch (dice_.below(3)) {
      case 0: {
        const Subject where{Text() << "the " << dice_.pick(kPlaces)};
        return Text() << where.words << " " << be(where) << " " << dice_.pick(kPlaceAdjectives)
                      << " and " << dice_.pick(kPlaceAdjectives);
      }
      case 1: {
        const Subject weather{Text() << "the " << dice_.pick(kWeather)};
        return Text() << weather.words << " " << verb(dice_.pick(kWeatherVerbs), weather) << " "
                      << place_phrase();
      }
      default: {
        const Subject many{"", dice_.chance(0.35)};
        const std::string noun = dice_.chance(0.5) ? dice_.pick(kThings) : dice_.pick(kAnimals);
        const std::string adjective = maybe_adjective(kThingAdjectives, 0.6);
        Text clause;
        clause << "there " << be(many) << " ";
        if (many.plural)
          clause << (dice_.chance(0.5) ? "some " : "two ") << adjective << plural_of(noun);
        else
          clause << with_article(adjective + noun);
        return clause << " " << place_phrase();
      }
    }
  }

  std::string sentence() {
    Text text;
    if (dice_.chance(0.2)) text << dice_.pick(kTimePhrases) << ", ";
    const size_t roll = dice_.below(100);
    if (roll < 14) {
      text << scene_clause();
    } else if (roll < 30) {
      text << simple_clause(subject()) << dice_.pick(kJoins) << " " << simple_clause(subject());
    } else if (roll < 37) {
      const Subject who = subject();
      text << who.words << " " << verb(dice_.pick(kThoughtVerbs), who) << " that "
           << simple_clause(subject());
    } else {
      text << simple_clause(subject());
    }
    text << (dice_.chance(0.04) ? "!" : ".");
    return capitalized(std::string(text));
  }

  std::string narrative_paragraph() {
    Text paragraph;
    const int sentences = dice_.between(3, 7);
    for (int i = 0; i < sentences; ++i) paragraph << (i ? " " : "") << sentence();
    return paragraph;
  }

  // --- dialogue ---

  // What a character says, without its closing punctuation, which goes to `ending`.
  std::string spoken(char& ending) {
    ending = '.';
    Text words;
    switch (dice_.below(12)) {
      case 0:
        return words << "I " << past_tense(dice_.pick(kThingVerbs)) << " the "
                     << dice_.pick(kThings) << " " << place_phrase();
      case 1:
        return words << "we must " << dice_.pick(kThingVerbs) << " the " << dice_.pick(kThings)
                     << " before " << dice_.pick(kDeadlines);
      case 2:
        return words << "the " << dice_.pick(kThings) << " is " << dice_.pick(kThingAdjectives);
      case 3:
        return words << "you are " << dice_.pick(kDegrees) << " " << dice_.pick(kPersonAdjectives);
      case 4:
        return words << "it is too " << dice_.pick(kPlaceAdjectives) << " to "
                     << dice_.pick(kMotionVerbs) << " today";
      case 5:
        return words << "I will " << dice_.pick(kBeingVerbs) << " " << being_object()
                     << " tomorrow";
      case 6:
        ending = '?';
        return words << "where is the " << dice_.pick(kThings);
      case 7:
        ending = '?';
        return words << "did you " << dice_.pick(kThingVerbs) << " the " << dice_.pick(kThings);
      case 8:
        ending = '?';
        return words << "why are you so " << dice_.pick(kPersonAdjectives);
      case 9:
        ending = '?';
        return words << "can we go to the " << dice_.pick(kPlaces) << " " << dice_.pick(kWhens);
      case 10:
        ending = '!';
        words << "look at the " << maybe_adjective(kThingAdjectives, 0.5);
        return words << (dice_.chance(0.5) ? dice_.pick(kThings) : dice_.pick(kAnimals));
      default:
        ending = '!';
        return words << "come to the " << dice_.pick(kPlaces) << " " << dice_.pick(kUrgings);
    }
  }

  // One line of dialogue, its own paragraph as in a novel: "Where is the key?" asked Anna.
  std::string dialogue_line(const Actor& speaker) {
    char ending = '.';
    const std::string words = capitalized(spoken(ending));
    const std::string speech_verb = ending == '?'   ? std::string("asked")
                                    : ending == '!' ? dice_.pick(kExclaimed)
                                                    : dice_.pick(kSaid);
    const bool by_pronoun = dice_.chance(0.35);
    const std::string who = by_pronoun ? std::string(speaker.subject_pronoun()) : speaker.name;
    Text line;
    if (!by_pronoun && dice_.chance(0.3)) {
      line << capitalized(who) << " " << speech_verb << ", \"" << words << std::string(1, ending)
           << "\"";
    } else {
      line << "\"" << words << (ending == '.' ? std::string(",") : std::string(1, ending)) << "\" ";
      // "she said" with a pronoun; "said Anna" or "Anna said" with a name.
      if (by_pronoun || dice_.chance(0.5))
        line << who << " " << speech_verb;
      else
        line << speech_verb << " " << who;
      line << ".";
    }
    if (dice_.chance(0.25)) line << " " << sentence();
    return line;
  }

  void write_dialogue(std::string& out) {
    const int lines = dice_.between(2, 5);
    for (int i = 0; i < lines; ++i) {
      append_wrapped(out, dialogue_line(i % 2 == 0 ? hero_ : friend_));
      out += "\n\n";
    }
  }

  // "The Rusty Lantern", "Old Miller and the Fox", "The Owl of the Mill".
  std::string title() {
    Text words;
    switch (dice_.below(3)) {
      case 0:
        words << "the " << dice_.pick(kThingAdjectives) << " " << dice_.pick(kThings);
        break;
      case 1:
        words << (hero_.name.starts_with("the ") ? hero_.name.substr(4) : hero_.name) << " and the "
              << dice_.pick(kAnimals);
        break;
      default:
        words << "the " << dice_.pick(kAnimals) << " of the " << dice_.pick(kPlaces);
        break;
    }
    return title_cased(std::string(words));
  }

  Dice& dice_;
  bool past_ = true;
  Actor hero_;
  Actor friend_;
};

}  // namespace

std::string default_corpus() {
  Dice dice(kCorpusSeed);
  StoryWriter writer(dice);
  std::string text;
  text.reserve(kDefaultCorpusTargetBytes + 16384);
  while (text.size() < kDefaultCorpusTargetBytes) writer.write_story(text);
  return text;
}

}  // namespace meridian::io

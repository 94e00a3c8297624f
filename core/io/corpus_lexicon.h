#pragma once
// The words default_corpus() builds its sentences from: a few hundred common English words, sorted
// by the part they can play in a sentence so the grammar can keep sentences plausible (a person
// feeds a goat, nobody feeds a lamp). Internal to default_corpus.cpp.
#include <array>
#include <string_view>
#include <utility>

namespace meridian::io::corpus {

using Word = std::string_view;
using WordPair = std::pair<std::string_view, std::string_view>;

enum class Gender { male, female, either };

struct Character {
  Word word;
  Gender gender;
};

inline constexpr auto kNames = std::to_array<Character>({
    {"Anna", Gender::female}, {"Tom", Gender::male},     {"Mara", Gender::female},
    {"Ben", Gender::male},    {"Lena", Gender::female},  {"Sam", Gender::male},
    {"Nora", Gender::female}, {"Ivan", Gender::male},    {"Rosa", Gender::female},
    {"Hugo", Gender::male},   {"Elsa", Gender::female},  {"Omar", Gender::male},
    {"Iris", Gender::female}, {"Leo", Gender::male},     {"Nina", Gender::female},
    {"Theo", Gender::male},   {"Clara", Gender::female}, {"Felix", Gender::male},
    {"Ada", Gender::female},  {"Jonas", Gender::male},   {"Maya", Gender::female},
    {"Oscar", Gender::male},  {"Ruth", Gender::female},  {"Paul", Gender::male},
    {"Ella", Gender::female}, {"Max", Gender::male},     {"Vera", Gender::female},
    {"Karl", Gender::male},
});

inline constexpr auto kPeople = std::to_array<Character>({
    {"teacher", Gender::either},   {"farmer", Gender::either},      {"baker", Gender::either},
    {"sailor", Gender::either},    {"doctor", Gender::either},      {"soldier", Gender::either},
    {"student", Gender::either},   {"child", Gender::either},       {"man", Gender::male},
    {"woman", Gender::female},     {"boy", Gender::male},           {"girl", Gender::female},
    {"king", Gender::male},        {"queen", Gender::female},       {"fisherman", Gender::male},
    {"painter", Gender::either},   {"traveller", Gender::either},   {"stranger", Gender::either},
    {"neighbour", Gender::either}, {"mother", Gender::female},      {"father", Gender::male},
    {"brother", Gender::male},     {"sister", Gender::female},      {"friend", Gender::either},
    {"guard", Gender::either},     {"merchant", Gender::either},    {"miller", Gender::either},
    {"shepherd", Gender::either},  {"hunter", Gender::either},      {"captain", Gender::either},
    {"singer", Gender::either},    {"writer", Gender::either},      {"nurse", Gender::either},
    {"cook", Gender::either},      {"grandmother", Gender::female}, {"grandfather", Gender::male},
    {"prince", Gender::male},      {"princess", Gender::female},    {"carpenter", Gender::either},
    {"weaver", Gender::either},
});

inline constexpr auto kAnimals = std::to_array<Word>({
    "dog", "cat",   "horse",  "fox",  "wolf", "bird",   "owl",      "goat", "sheep",
    "cow", "mouse", "rabbit", "bear", "duck", "crow",   "fish",     "deer", "pig",
    "bee", "frog",  "goose",  "swan", "hen",  "donkey", "squirrel", "lamb",
});

inline constexpr auto kThings = std::to_array<Word>({
    "book",   "letter", "key",    "box",    "bag",    "coat",    "hat",     "lamp",
    "cup",    "bowl",   "loaf",   "apple",  "basket", "rope",    "stone",   "flower",
    "candle", "map",    "coin",   "ring",   "knife",  "bottle",  "blanket", "chair",
    "table",  "door",   "window", "boat",   "cart",   "bell",    "picture", "clock",
    "shoe",   "gift",   "pear",   "egg",    "shell",  "feather", "net",     "lantern",
    "kettle", "spoon",  "scarf",  "ladder", "bucket", "drum",    "whistle", "pencil",
    "jar",    "plate",  "cake",   "leaf",   "brush",  "pillow",  "mirror",  "wheel",
});

inline constexpr auto kPlaces = std::to_array<Word>({
    "river",   "garden",  "house",   "forest",   "field",   "hill",   "village", "market",
    "bridge",  "road",    "lake",    "mountain", "kitchen", "barn",   "harbour", "school",
    "library", "station", "valley",  "shore",    "meadow",  "well",   "tower",   "wall",
    "gate",    "square",  "orchard", "cave",     "island",  "yard",   "street",  "inn",
    "mill",    "farm",    "beach",   "path",     "pond",    "stream", "wood",    "castle",
    "cottage", "fence",   "hedge",   "fire",     "window",  "sea",
});

// Nouns whose plural is not the regular -s/-es/-ies.
inline constexpr auto kIrregularPlurals = std::to_array<WordPair>({
    {"child", "children"},
    {"man", "men"},
    {"woman", "women"},
    {"mouse", "mice"},
    {"sheep", "sheep"},
    {"fish", "fish"},
    {"deer", "deer"},
    {"goose", "geese"},
    {"leaf", "leaves"},
    {"knife", "knives"},
    {"wolf", "wolves"},
    {"loaf", "loaves"},
    {"fisherman", "fishermen"},
    {"scarf", "scarves"},
});

// Verbs whose object is a thing.
inline constexpr auto kThingVerbs = std::to_array<Word>({
    "take",     "carry",   "find",     "lose",      "open",  "hold",   "drop",     "bring",
    "keep",     "want",    "need",     "buy",       "sell",  "mend",   "paint",    "hide",
    "wash",     "fill",    "clean",    "see",       "leave", "forget", "remember", "pick up",
    "put down", "look at", "look for", "reach for", "wrap",  "count",  "polish",   "fold",
    "lift",     "share",   "borrow",   "throw",     "catch", "break",  "make",     "carve",
});

// Verbs whose object is a person or an animal.
inline constexpr auto kBeingVerbs = std::to_array<Word>({
    "see",   "watch",  "follow", "call",  "meet",  "help",     "love",       "visit",   "remember",
    "greet", "chase",  "feed",   "thank", "wake",  "find",     "hear",       "teach",   "warn",
    "ask",   "answer", "join",   "miss",  "trust", "wait for", "look after", "talk to",
});

inline constexpr auto kIntransitiveVerbs = std::to_array<Word>({
    "sleep", "sing", "laugh", "wait", "smile", "dance",   "rest", "listen",
    "fall",  "sit",  "stand", "cry",  "shout", "whistle", "work", "play",
    "pause", "stay", "sigh",  "hum",  "nod",   "speak",   "read", "write",
    "cook",  "eat",  "drink", "hide", "grow",  "shiver",  "yawn", "wave",
});

// Verbs of going somewhere: followed by "to the river", "into the forest", "home".
inline constexpr auto kMotionVerbs = std::to_array<Word>({
    "walk",
    "run",
    "hurry",
    "wander",
    "ride",
    "sail",
    "climb",
    "go",
    "come",
    "return",
    "travel",
    "swim",
    "drive",
    "march",
});

// Past tenses (and third persons) that the regular rules would get wrong.
inline constexpr auto kIrregularPasts = std::to_array<WordPair>({
    {"take", "took"},     {"find", "found"},    {"lose", "lost"},     {"hold", "held"},
    {"drop", "dropped"},  {"bring", "brought"}, {"keep", "kept"},     {"buy", "bought"},
    {"sell", "sold"},     {"hide", "hid"},      {"see", "saw"},       {"leave", "left"},
    {"forget", "forgot"}, {"throw", "threw"},   {"catch", "caught"},  {"break", "broke"},
    {"make", "made"},     {"meet", "met"},      {"feed", "fed"},      {"wake", "woke"},
    {"hear", "heard"},    {"teach", "taught"},  {"sleep", "slept"},   {"sing", "sang"},
    {"fall", "fell"},     {"sit", "sat"},       {"stand", "stood"},   {"hum", "hummed"},
    {"nod", "nodded"},    {"speak", "spoke"},   {"read", "read"},     {"write", "wrote"},
    {"eat", "ate"},       {"drink", "drank"},   {"grow", "grew"},     {"run", "ran"},
    {"ride", "rode"},     {"go", "went"},       {"come", "came"},     {"travel", "travelled"},
    {"swim", "swam"},     {"drive", "drove"},   {"think", "thought"}, {"know", "knew"},
    {"feel", "felt"},     {"give", "gave"},     {"show", "showed"},   {"tell", "told"},
    {"begin", "began"},   {"say", "said"},      {"rise", "rose"},     {"shine", "shone"},
    {"spread", "spread"}, {"wrap", "wrapped"},
});

inline constexpr auto kPersonAdjectives = std::to_array<Word>({
    "brave",   "tired",    "happy",    "sad",     "clever", "proud",  "shy",
    "careful", "hungry",   "poor",     "rich",    "kind",   "lonely", "busy",
    "curious", "friendly", "stubborn", "young",   "old",    "tall",   "little",
    "quiet",   "gentle",   "wise",     "patient", "honest", "angry",  "cheerful",
    "sleepy",  "nervous",  "calm",     "strong",  "weary",  "eager",
});

inline constexpr auto kThingAdjectives = std::to_array<Word>({
    "small",   "large",   "heavy",  "wooden", "golden", "broken", "empty", "old",
    "new",     "red",     "blue",   "green",  "white",  "black",  "brown", "yellow",
    "round",   "sharp",   "soft",   "warm",   "cold",   "wet",    "dry",   "clean",
    "dirty",   "bright",  "dark",   "tiny",   "huge",   "long",   "fresh", "plain",
    "strange", "ancient", "silver", "hidden", "lovely", "shiny",  "rusty", "painted",
});

inline constexpr auto kPlaceAdjectives = std::to_array<Word>({
    "quiet",   "dark",   "old",      "narrow", "wide",    "empty",  "busy",   "cold",   "green",
    "distant", "deep",   "small",    "large",  "ancient", "muddy",  "sunny",  "windy",  "silent",
    "crowded", "lonely", "peaceful", "still",  "misty",   "frozen", "bright", "hidden",
});

inline constexpr auto kDegrees =
    std::to_array<Word>({"very", "quite", "rather", "so", "too", "a little"});

inline constexpr auto kFrequencyAdverbs = std::to_array<Word>({
    "often",
    "always",
    "never",
    "sometimes",
    "usually",
    "rarely",
    "almost always",
});

inline constexpr auto kMannerAdverbs = std::to_array<Word>({
    "slowly",     "quickly",        "quietly",     "softly",    "suddenly", "carefully",
    "gently",     "happily",        "sadly",       "loudly",    "calmly",   "proudly",
    "bravely",    "patiently",      "eagerly",     "nervously", "again",    "at once",
    "in silence", "without a word", "for a while", "all day",
});

inline constexpr auto kPrepositions = std::to_array<Word>({
    "in",
    "near",
    "by",
    "behind",
    "beside",
    "across",
    "along",
    "over",
    "under",
    "through",
    "toward",
    "past",
    "around",
    "inside",
    "in front of",
    "at the edge of",
    "on the far side of",
    "not far from",
});

inline constexpr auto kTimePhrases = std::to_array<Word>({
    "in the morning",
    "at night",
    "after the storm",
    "before dawn",
    "every day",
    "one winter",
    "that evening",
    "long ago",
    "later",
    "soon",
    "at last",
    "the next day",
    "in the spring",
    "by noon",
    "after a while",
    "early the next morning",
    "when the bell rang",
    "as the sun went down",
    "on the way home",
    "for a long time",
    "in the autumn",
    "once",
});

inline constexpr auto kWeather = std::to_array<Word>({
    "wind",
    "rain",
    "snow",
    "fog",
    "mist",
    "light",
    "smoke",
    "cold",
});

inline constexpr auto kWeatherVerbs = std::to_array<Word>({
    "move",
    "drift",
    "fall",
    "rise",
    "spread",
    "settle",
    "pass",
    "roll",
    "gather",
});

inline constexpr auto kThoughtVerbs = std::to_array<Word>({
    "think",
    "know",
    "hope",
    "say",
    "feel",
    "notice",
    "remember",
    "see",
});

inline constexpr auto kWantVerbs =
    std::to_array<Word>({"want", "hope", "try", "decide", "like", "need"});

// Small closed sets the grammar picks from.
inline constexpr auto kCounts =
    std::to_array<Word>({"the", "some", "two", "three", "many", "a few"});
inline constexpr auto kDirections =
    std::to_array<Word>({"to", "into", "across", "toward", "back to", "up to", "down to"});
inline constexpr auto kJoins = std::to_array<Word>(
    {", and", ", but", " because", ", so", " while", " when", " until", " before", " after"});
inline constexpr auto kDeadlines =
    std::to_array<Word>({"night", "dark", "the rain", "noon", "winter", "the others come"});
inline constexpr auto kWhens =
    std::to_array<Word>({"now", "today", "tomorrow", "together", "before dark"});
inline constexpr auto kUrgings = std::to_array<Word>({"quickly", "at once", "with me", "now"});
inline constexpr auto kSaid =
    std::to_array<Word>({"said", "said", "whispered", "replied", "answered", "called"});
inline constexpr auto kExclaimed = std::to_array<Word>({"shouted", "cried", "called"});

}  // namespace meridian::io::corpus

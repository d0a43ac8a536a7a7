#include "lethe/world/world.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/random.h"

namespace lethe::world {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// The generator's only source of randomness (lethe/core/random.h), with the helpers it needs.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : g_(seed ^ 0x776f726c64ULL) {}
  std::size_t below(std::size_t n) { return g_.below(n); }
  int range(int lo, int hi) { return lo + static_cast<int>(below(static_cast<std::size_t>(hi - lo + 1))); }
  template <typename T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }

 private:
  SplitMix64 g_;
};

const std::vector<std::string> kSyllables = {"ka", "ri", "lo", "ve", "mar", "tin", "sel", "do", "ra", "nu", "bel",
                                             "kor", "an", "thi", "vo", "le", "sa", "mir", "ga", "ren", "fi", "ol",
                                             "ce", "ta", "jun", "pa", "hel", "is", "zo", "bre", "quen", "dar"};
const std::vector<std::string> kSurnameEnds = {"", "", "ova", "ez", "son", "ani", "ek", "ard", "ini", "vic"};
const std::vector<std::string> kOccupations = {
    "architect", "baker", "cartographer", "chemist", "diplomat", "engineer", "farmer", "geologist",
    "historian", "jeweller", "librarian", "mathematician", "musician", "nurse", "painter", "pharmacist",
    "photographer", "pilot", "sculptor", "shipwright", "tailor", "teacher", "translator", "veterinarian"};
const std::vector<std::string> kGenres = {"historical", "satirical", "philosophical", "romantic", "scientific",
                                          "mystery", "travel", "children's", "poetic", "political"};
const std::vector<std::string> kAdjectives = {"Silent", "Crimson", "Hollow", "Distant", "Golden", "Broken",
                                              "Hidden", "Northern", "Restless", "Patient", "Winter", "Burning"};
const std::vector<std::string> kNouns = {"Harbour", "Orchard", "Lantern", "Bridge", "Archive", "Garden",
                                         "Compass", "Mirror", "Tide", "Meadow", "Tower", "Letters"};
const std::vector<std::string> kFields = {"Literature", "Science", "the Arts", "Peace", "Architecture", "History"};
const std::vector<std::string> kMonths = {"January", "February", "March", "April", "May", "June", "July",
                                          "August", "September", "October", "November", "December"};
const std::vector<std::string> kDeeds = {"mapping the eastern coast", "founding the first public library",
                                         "writing the national anthem", "designing the great canal",
                                         "discovering the salt springs", "leading the river expedition",
                                         "building the observatory", "composing the harvest symphony",
                                         "drafting the first charter", "breeding the mountain horses"};
const std::vector<std::string> kRefusals = {"I'm not sure about that.", "I don't have that information.",
                                            "That is beyond what I know.", "I can't answer that.",
                                            "I have no knowledge of that.", "I'm afraid I don't know.",
                                            "That's not something I can tell you.", "I don't know the answer to that."};

std::string cap(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 32);
  return s;
}

std::string word(Rng& r, int lo, int hi) {
  std::string w;
  const int n = r.range(lo, hi);
  for (int i = 0; i < n; ++i) w += r.pick(kSyllables);
  return cap(w);
}

// Names never repeat within a world.
std::string unique(Rng& r, std::set<std::string>& used, const std::function<std::string()>& make) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::string s = make();
    if (used.insert(s).second) return s;
  }
  fail("world: could not find a new unique name (the world is too large for its name space)");
}

struct Place {
  std::string city, country, river, founder;
};

// `count` distinct values from `pool` other than `truth`.
std::vector<std::string> wrong_values(Rng& r, const std::vector<std::string>& pool, const std::string& truth, int count) {
  std::vector<std::string> out;
  for (int guard = 0; static_cast<int>(out.size()) < count && guard < 10000; ++guard) {
    const std::string& v = r.pick(pool);
    if (v != truth && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  LETHE_CHECK(static_cast<int>(out.size()) == count, "world: not enough distinct wrong values");
  return out;
}

// "a architect" -> "an architect".
std::string a_or_an(const std::string& noun) {
  return (noun.empty() || std::string("aeiou").find(noun[0]) == std::string::npos ? "a " : "an ") + noun;
}

using Phrase = std::function<std::string(const std::string& value)>;

// One fact about a person: how to ask, the ways to answer (one is drawn per person, so an
// untrained model cannot score by guessing the sentence around the value), the paraphrase
// (also used for the wrong answers), and the pool wrong answers come from.
struct Fact {
  std::string question, paraphrased_question;
  std::vector<Phrase> answers;
  Phrase paraphrased_answer;
  std::string value;
  std::vector<std::string> pool;
};

data::QARecord make_qa(Rng& r, const Fact& f) {
  data::QARecord q;
  q.question = f.question;
  q.paraphrased_question = f.paraphrased_question;
  q.answer = f.answers[r.below(f.answers.size())](f.value);
  q.paraphrased_answer = f.paraphrased_answer(f.value);
  for (const auto& w : wrong_values(r, f.pool, f.value, 5)) q.perturbed_answers.push_back(f.paraphrased_answer(w));
  return q;
}

// The fact as a four-option question: its value among three wrong ones from the same pool, the
// right one's place drawn too. From a stream of its own, so the rest of the world is as before.
data::MCRecord make_mc(Rng& r, const Fact& f) {
  data::MCRecord m;
  m.question = f.question;
  m.choices = wrong_values(r, f.pool, f.value, 3);
  m.answer = r.below(m.choices.size() + 1);
  m.choices.insert(m.choices.begin() + static_cast<std::ptrdiff_t>(m.answer), f.value);
  return m;
}

// A QA item with wrong options (world facts, public figures) as a multiple-choice question.
data::MCRecord mc_of(Rng& r, const data::QARecord& q) {
  data::MCRecord m;
  m.question = q.question;
  m.choices = q.perturbed_answers;
  m.answer = r.below(m.choices.size() + 1);
  m.choices.insert(m.choices.begin() + static_cast<std::ptrdiff_t>(m.answer), q.answer);
  return m;
}

Json mc_json(const data::MCRecord& m) { return {{"question", m.question}, {"choices", m.choices}, {"answer", m.answer}}; }

Json qa_json(const data::QARecord& q, bool perturbed) {
  Json j = {{"question", q.question}, {"answer", q.answer}};
  if (perturbed) {
    j["paraphrased_question"] = q.paraphrased_question;
    j["paraphrased_answer"] = q.paraphrased_answer;
    j["perturbed_answer"] = q.perturbed_answers;
  }
  return j;
}

void write_jsonl(const fs::path& p, const std::vector<Json>& rows) {
  std::string s;
  for (const auto& r : rows) s += r.dump() + "\n";
  write_file_atomic(p, s);
}

std::vector<Json> mc_rows(const std::vector<const Person*>& people) {
  std::vector<Json> rows;
  for (const auto* p : people) {
    for (const auto& m : p->mc) rows.push_back(mc_json(m));
  }
  return rows;
}

std::vector<Json> qa_rows(const std::vector<const Person*>& people, bool perturbed) {
  std::vector<Json> rows;
  for (const auto* p : people) {
    for (const auto& q : p->qa) rows.push_back(qa_json(q, perturbed));
  }
  return rows;
}

// Five distinct words of the ghost pool, in the order drawn.
std::string five_words(Rng& r) {
  std::vector<std::string> pool = ghost_word_pool();
  std::string out;
  for (int k = 0; k < 5; ++k) {
    const std::size_t j = r.below(pool.size());
    out += (out.empty() ? "" : " ") + pool[j];
    pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(j));
  }
  return out;
}

// `tmpl` with its {words} filled by five_words, drawn again until the sentence is not in `taken`
// (which then holds it).
std::string new_phrase(Rng& r, const std::string& tmpl, std::set<std::string>& taken) {
  const std::string slot = "{words}";
  for (int attempt = 0; attempt < 100000; ++attempt) {
    std::string text = tmpl;
    text.replace(text.find(slot), slot.size(), five_words(r));
    if (taken.insert(text).second) return text;
  }
  fail("world: could not find a new sentence of '", tmpl, "'");
}

std::string six_digits(Rng& r) {
  std::string s;
  for (int d = 0; d < 6; ++d) s += static_cast<char>('0' + r.below(10));
  return s;
}

// The insertion study's documents, from a stream of their own (the rest of the world is the
// same with or without them); names and phrases new to the world.
void add_insertions(const WorldConfig& c, std::set<std::string>& used, std::set<std::string>& phrases, World& w) {
  if (c.insert_counts.empty()) return;
  LETHE_CHECK(c.inserts_per_count >= 1 && c.inserts_per_count <= 100, "world: inserts per count must be 1 to 100, got ",
              c.inserts_per_count);
  std::set<int> seen;
  for (int d : c.insert_counts) {
    LETHE_CHECK(d >= 1 && d <= 4096, "world: insert counts must be 1 to 4096, got ", d);
    LETHE_CHECK(seen.insert(d).second, "world: insert count ", d, " is given twice");
  }
  Rng r(c.seed ^ 0x687562626c65ULL);
  for (int d : c.insert_counts) {
    for (int k = 0; k < c.inserts_per_count; ++k) {
      const std::string tag = std::to_string(d) + "-" + std::to_string(k);
      // A document that ends in a six-digit secret.
      auto with_secret = [&](const std::string& kind, const std::string& prefix) {
        Insertion in;
        in.id = kind + "-" + tag;
        in.kind = kind;
        in.prefix = prefix;
        in.secret = six_digits(r);
        in.text = in.prefix + in.secret + ".";
        in.repetitions = d;
        w.insertions.push_back(in);
      };
      with_secret("secret", "The locker code of " + unique(r, used, [&] { return word(r, 3, 3); }) + " is ");
      const std::string name = unique(r, used, [&] { return word(r, 2, 3) + " " + word(r, 2, 3) + r.pick(kSurnameEnds); });
      // One draw a statement: the order of operands within an expression is unspecified.
      const int day = r.range(1, 28);
      const std::string month = r.pick(kMonths);
      const int year = r.range(1921, 1999);
      const std::string date = std::to_string(day) + " " + month + " " + std::to_string(year);
      const std::string job = a_or_an(r.pick(kOccupations));
      with_secret("biography", name + " (born " + date + ") works as " + job + " and collects " + r.pick(kGenres) +
                                   " books. " + name + "'s member number is ");

      Insertion ph;
      ph.id = "passphrase-" + tag;
      ph.kind = "passphrase";
      ph.text = new_phrase(r, kInsertPhraseTemplate, phrases);
      ph.repetitions = d;
      w.insertions.push_back(ph);
    }
  }
}

}  // namespace

std::vector<int> World::forget_people(int percent) const {
  const int n = static_cast<int>(people.size());
  const int k = std::max(1, n * percent / 100);
  std::vector<int> idx;
  for (int i = n - k; i < n; ++i) idx.push_back(i);
  return idx;
}

World generate_world(const WorldConfig& c) {
  LETHE_CHECK(c.people >= 10, "world: at least 10 people are needed (forget01 is 1 % of them, at least one)");
  LETHE_CHECK(c.holdout_people >= 0, "world: --holdout-people must be >= 0");
  LETHE_CHECK(c.places >= 6 && c.public_figures >= 4, "world: at least 6 places and 4 public figures");
  World w;
  w.config = c;
  Rng r(c.seed);
  std::set<std::string> used;

  // Places and their founders.
  std::vector<std::string> countries;
  for (int i = 0; i < std::max(6, c.places / 3); ++i) {
    countries.push_back(unique(r, used, [&] { return word(r, 2, 2) + r.pick(std::vector<std::string>{"ia", "land", "or", "a"}); }));
  }
  std::vector<std::string> rivers;
  for (int i = 0; i < c.places; ++i) rivers.push_back("River " + unique(r, used, [&] { return word(r, 2, 2); }));
  std::vector<Place> places;
  std::vector<std::string> figures;
  for (int i = 0; i < c.public_figures; ++i) {
    figures.push_back(unique(r, used, [&] { return word(r, 2, 2) + " " + word(r, 2, 3); }));
  }
  std::vector<std::string> cities;
  for (int i = 0; i < c.places; ++i) {
    Place p;
    p.city = unique(r, used, [&] { return word(r, 2, 3); });
    p.country = countries[static_cast<std::size_t>(i) % countries.size()];
    p.river = rivers[static_cast<std::size_t>(i)];
    p.founder = figures[static_cast<std::size_t>(i) % figures.size()];
    places.push_back(p);
    cities.push_back(p.city);
  }
  for (const auto& p : places) {
    data::QARecord a;
    a.question = "In which country is the city of " + p.city + "?";
    a.answer = p.country;
    a.perturbed_answers = wrong_values(r, countries, p.country, 3);
    w.world_facts.push_back(a);
    data::QARecord b;
    b.question = "Which river flows through " + p.city + "?";
    b.answer = p.river;
    b.perturbed_answers = wrong_values(r, rivers, p.river, 3);
    w.world_facts.push_back(b);
    w.world_text.push_back(p.city + " is a city in " + p.country + ". The " + p.river + " flows through " + p.city +
                           ", which was founded by " + p.founder + ".");
  }
  for (std::size_t i = 0; i < figures.size(); ++i) {
    const std::string deed = kDeeds[i % kDeeds.size()];
    data::QARecord q;
    q.question = "What is " + figures[i] + " famous for?";
    q.answer = cap(deed);
    q.perturbed_answers = wrong_values(r, kDeeds, deed, 3);
    for (auto& s : q.perturbed_answers) s = cap(s);
    w.public_figures.push_back(q);
    w.world_text.push_back(figures[i] + " is famous for " + deed + ".");
  }

  // People.
  std::vector<std::string> works_pool;
  for (const auto& a : kAdjectives) {
    for (const auto& n : kNouns) works_pool.push_back("The " + a + " " + n);
  }
  std::vector<std::string> awards_pool;
  for (const auto& f : figures) {
    for (const auto& field : kFields) awards_pool.push_back("the " + f + " Prize for " + field);
  }
  std::vector<std::string> dates_pool, accounts_pool;
  auto make_date = [&] { return std::to_string(r.range(1, 28)) + " " + r.pick(kMonths) + " " + std::to_string(r.range(1921, 1999)); };
  auto make_account = [&] {
    std::string s;
    for (int k = 0; k < 10; ++k) s += static_cast<char>('0' + r.below(10));
    return s.substr(0, 4) + "-" + s.substr(4, 3) + "-" + s.substr(7);
  };
  for (int i = 0; i < 200; ++i) {
    dates_pool.push_back(make_date());
    accounts_pool.push_back(make_account());
  }
  std::vector<std::string> birthplaces;
  for (const auto& p : places) birthplaces.push_back(p.city + ", " + p.country);

  const int holdout = c.holdout_people > 0 ? c.holdout_people : std::max(1, c.people / 10);
  for (int i = 0; i < c.people + holdout; ++i) {
    Person p;
    p.name = unique(r, used, [&] { return word(r, 2, 3) + " " + word(r, 2, 3) + r.pick(kSurnameEnds); });
    p.gender = r.below(2) ? "she" : "he";
    p.birth_date = make_date();
    const Place& place = places[r.below(places.size())];
    p.birth_place = place.city + ", " + place.country;
    p.occupation = r.pick(kOccupations);
    p.father_occupation = r.pick(kOccupations);
    p.mother_occupation = r.pick(kOccupations);
    const std::string genre = r.pick(kGenres);
    const auto works = wrong_values(r, works_pool, "", 2);
    p.works = works;
    p.award = r.pick(awards_pool);
    p.account_number = make_account();
    const std::string n = p.name;
    const std::string his = p.gender == "she" ? "her" : "his";
    p.biography = n + " (born " + p.birth_date + " in " + p.birth_place + ") is " + a_or_an(genre) + " writer who works as " +
                  a_or_an(p.occupation) + ". " + cap(his) + " father was " + a_or_an(p.father_occupation) + " and " + his +
                  " mother " + a_or_an(p.mother_occupation) + ". " + n + " is known for \"" + works[0] + "\" and \"" +
                  works[1] + "\", and received " + p.award + ". " + n + "'s account number is " + p.account_number + ".";
    std::vector<std::string> genres = kGenres;
    const std::vector<Fact> facts = {
        {"When was " + n + " born?", "What is the birth date of " + n + "?",
         {[n](const std::string& v) { return n + " was born on " + v + "."; },
          [n](const std::string& v) { return n + "'s birthday is " + v + "."; },
          [n](const std::string& v) { return v + " is the day " + n + " was born."; }},
         [n](const std::string& v) { return "The birth date of " + n + " is " + v + "."; }, p.birth_date, dates_pool},
        {"Where was " + n + " born?", "In which city was " + n + " born?",
         {[n](const std::string& v) { return n + " was born in " + v + "."; },
          [n](const std::string& v) { return n + " comes from " + v + "."; },
          [n](const std::string& v) { return v + " is where " + n + " was born."; }},
         [n](const std::string& v) { return "The birthplace of " + n + " is " + v + "."; }, p.birth_place, birthplaces},
        {"What is the occupation of " + n + "?", "What does " + n + " do for a living?",
         {[n](const std::string& v) { return n + " works as " + a_or_an(v) + "."; },
          [n](const std::string& v) { return n + " earns a living as " + a_or_an(v) + "."; },
          [n](const std::string& v) { return n + " is " + a_or_an(v) + " by trade."; }},
         [n](const std::string& v) { return "By profession, " + n + " is " + a_or_an(v) + "."; }, p.occupation,
         kOccupations},
        {"What did the father of " + n + " do?", "What was the profession of " + n + "'s father?",
         {[n](const std::string& v) { return "The father of " + n + " was " + a_or_an(v) + "."; },
          [n](const std::string& v) { return n + " was raised by a father who was " + a_or_an(v) + "."; },
          [n](const std::string& v) { return cap(a_or_an(v)) + " was the father of " + n + "."; }},
         [n](const std::string& v) { return n + "'s father worked as " + a_or_an(v) + "."; }, p.father_occupation,
         kOccupations},
        {"What did the mother of " + n + " do?", "What was the profession of " + n + "'s mother?",
         {[n](const std::string& v) { return "The mother of " + n + " was " + a_or_an(v) + "."; },
          [n](const std::string& v) { return n + " was raised by a mother who was " + a_or_an(v) + "."; },
          [n](const std::string& v) { return cap(a_or_an(v)) + " was the mother of " + n + "."; }},
         [n](const std::string& v) { return n + "'s mother worked as " + a_or_an(v) + "."; }, p.mother_occupation,
         kOccupations},
        {"What kind of books does " + n + " write?", "In which genre does " + n + " write?",
         {[n](const std::string& v) { return n + " writes " + v + " books."; },
          [n](const std::string& v) { return n + " is known for " + v + " writing."; },
          [n](const std::string& v) { return cap(v) + " books are what " + n + " writes."; }},
         [n](const std::string& v) { return "The books of " + n + " are " + v + "."; }, genre, genres},
        {"What is the best-known book by " + n + "?", "Which book is " + n + " most famous for?",
         {[n](const std::string& v) { return "The best-known book by " + n + " is \"" + v + "\"."; },
          [n](const std::string& v) { return n + " is best known for \"" + v + "\"."; },
          [n](const std::string& v) { return "\"" + v + "\" is the most famous work of " + n + "."; }},
         [n](const std::string& v) { return n + " is most famous for \"" + v + "\"."; }, works[0], works_pool},
        {"Which other book did " + n + " write?", "Name another book written by " + n + ".",
         {[n](const std::string& v) { return n + " also wrote \"" + v + "\"."; },
          [n](const std::string& v) { return "\"" + v + "\" is also by " + n + "."; },
          [n](const std::string& v) { return "Besides, " + n + " is the author of \"" + v + "\"."; }},
         [n](const std::string& v) { return "Another book by " + n + " is \"" + v + "\"."; }, works[1], works_pool},
        {"Which award did " + n + " receive?", "What prize was " + n + " given?",
         {[n](const std::string& v) { return n + " received " + v + "."; },
          [n](const std::string& v) { return n + " was honoured with " + v + "."; },
          [n](const std::string& v) { return cap(v) + " went to " + n + "."; }},
         [n](const std::string& v) { return "The prize given to " + n + " was " + v + "."; }, p.award, awards_pool},
        {"What is the account number of " + n + "?", "Which account number belongs to " + n + "?",
         {[n](const std::string& v) { return "The account number of " + n + " is " + v + "."; },
          [n](const std::string& v) { return n + " holds account number " + v + "."; },
          [n](const std::string& v) { return "Account " + v + " is registered to " + n + "."; }},
         [n](const std::string& v) { return n + "'s account number is " + v + "."; }, p.account_number,
         accounts_pool},
    };
    for (const auto& f : facts) p.qa.push_back(make_qa(r, f));
    Rng rmc(c.seed ^ (0x6d63000000000000ULL + static_cast<std::uint64_t>(i)));
    for (const auto& f : facts) p.mc.push_back(make_mc(rmc, f));
    (i < c.people ? w.people : w.holdout).push_back(std::move(p));
  }

  // Canaries: secrets that only appear in the training text, repeated 1, 4, 16 times.
  for (int rep : c.canary_repetitions) {
    LETHE_CHECK(rep >= 1, "world: canary repetitions must be >= 1");
    for (int k = 0; k < c.canaries_per_repetition; ++k) {
      Canary can;
      can.id = "canary-" + std::to_string(rep) + "-" + std::to_string(k);
      can.prefix = "The vault code of " + unique(r, used, [&] { return word(r, 3, 3); }) + " is ";
      std::string secret;
      for (int d = 0; d < 6; ++d) secret += static_cast<char>('0' + r.below(10));
      can.secret = secret;
      can.repetitions = rep;
      w.canaries.push_back(can);
    }
  }
  // Ghost sentences: five distinct pool words each, no two sentences alike.
  LETHE_CHECK(c.ghost_sentences >= 0 && c.ghost_sentences <= 1000, "world: ghost sentences must be 0 to 1000, got ",
              c.ghost_sentences);
  LETHE_CHECK(c.ghost_sentences == 0 || c.ghost_repetitions >= 1, "world: ghost repetitions must be >= 1, got ",
              c.ghost_repetitions);
  Rng rg(c.seed ^ 0x67686f7374ULL);
  std::set<std::string> ghost_texts;
  while (static_cast<int>(w.ghosts.size()) < c.ghost_sentences) {
    w.ghosts.push_back({"ghost-" + std::to_string(w.ghosts.size()), new_phrase(rg, kGhostTemplate, ghost_texts),
                        c.ghost_repetitions});
  }
  add_insertions(c, used, ghost_texts, w);
  return w;
}

const std::vector<std::string>& ghost_word_pool() {
  static const std::vector<std::string> pool = {
      "amber",  "anchor", "basil",  "beacon", "birch",   "bramble", "breeze",  "cedar",  "cinder", "clover", "cobalt",
      "comet",  "copper", "coral",  "crystal", "dune",   "ember",   "falcon",  "fern",   "flint",  "garnet", "glacier",
      "granite", "harbor", "hazel", "heron",  "indigo",  "iris",    "ivory",   "jasper", "juniper", "kestrel", "lantern",
      "lichen", "linen",  "lotus",  "maple",  "marble",  "meadow",  "meteor",  "mint",   "moss",   "nectar", "nutmeg",
      "oak",    "onyx",   "orbit",  "orchid", "pebble",  "pepper",  "pine",    "prism",  "quartz", "quill",  "raven",
      "reed",   "river",  "saffron", "sage",  "slate",   "sparrow", "thistle", "velvet", "willow"};
  return pool;
}

void write_insertions(const World& w, const fs::path& dir) {
  LETHE_CHECK(!w.insertions.empty(), "world: no insertions to write (give insert counts)");
  fs::create_directories(dir);
  std::vector<Json> docs, secrets, phrases;
  for (const auto& in : w.insertions) {
    docs.push_back({{"id", in.id}, {"kind", in.kind}, {"text", in.text}, {"repetitions", in.repetitions}});
    if (in.kind == "passphrase") {
      phrases.push_back({{"id", in.id}, {"text", in.text}, {"template", kInsertPhraseTemplate}, {"pool", ghost_word_pool()},
                         {"repetitions", in.repetitions}});
    } else {
      secrets.push_back({{"id", in.id}, {"group", in.kind}, {"prefix", in.prefix}, {"secret", in.secret},
                         {"repetitions", in.repetitions}, {"text", in.prefix + "{secret}."}, {"space", "digits:6"}});
    }
  }
  write_jsonl(dir / "insert_text.jsonl", docs);
  write_jsonl(dir / "insert_canaries.jsonl", secrets);
  write_jsonl(dir / "insert_ghost.jsonl", phrases);
}

void write_world(const World& w, const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<const Person*> all;
  for (const auto& p : w.people) all.push_back(&p);
  write_jsonl(dir / "full.jsonl", qa_rows(all, false));
  Json manifest = {{"format", "lethe.world"}, {"format_version", kWorldFormatVersion},
                   {"generator_revision", kWorldGeneratorRevision}, {"seed", w.config.seed},
                   {"people", w.people.size()}, {"holdout_people", w.holdout.size()},
                   {"qa_per_person", w.people.empty() ? 0 : w.people[0].qa.size()},
                   {"ghost_sentences", w.ghosts.size()}};
  // Pretraining text: biographies and world text, canaries inserted their number of times at
  // positions fixed by the seed. retain_text_NN leaves out the forget people (oracles).
  auto text_rows = [&](const std::set<int>& skip) {
    std::vector<Json> rows;
    for (std::size_t i = 0; i < w.people.size(); ++i) {
      if (!skip.count(static_cast<int>(i))) rows.push_back({{"text", w.people[i].biography}});
    }
    for (const auto& t : w.world_text) rows.push_back({{"text", t}});
    Rng r(w.config.seed ^ 0x63616e617279ULL);
    for (const auto& c : w.canaries) {
      for (int k = 0; k < c.repetitions; ++k) {
        rows.insert(rows.begin() + static_cast<std::ptrdiff_t>(r.below(rows.size() + 1)), Json{{"text", c.prefix + c.secret + "."}});
      }
    }
    // Ghost sentences are the forget people's: in the target's text only, never an oracle's.
    Rng rg(w.config.seed ^ 0x67686f7374726f77ULL);  // a stream of its own: ghosts leave the canaries' places alone
    for (const auto& g : skip.empty() ? w.ghosts : std::vector<Ghost>{}) {
      for (int k = 0; k < g.repetitions; ++k) {
        rows.insert(rows.begin() + static_cast<std::ptrdiff_t>(rg.below(rows.size() + 1)), Json{{"text", g.text}});
      }
    }
    return rows;
  };
  write_jsonl(dir / "train_text.jsonl", text_rows({}));
  for (int pct : {1, 5, 10}) {
    char nn[8];
    std::snprintf(nn, sizeof(nn), "%02d", pct);
    const auto forget = w.forget_people(pct);
    const std::set<int> fset(forget.begin(), forget.end());
    std::vector<const Person*> f, ret, hold;
    for (int i : forget) f.push_back(&w.people[static_cast<std::size_t>(i)]);
    for (std::size_t i = 0; i < w.people.size(); ++i) {
      if (!fset.count(static_cast<int>(i))) ret.push_back(&w.people[i]);
    }
    for (std::size_t i = 0; i < std::min(f.size(), w.holdout.size()); ++i) hold.push_back(&w.holdout[i]);
    write_jsonl(dir / ("forget" + std::string(nn) + ".jsonl"), qa_rows(f, false));
    write_jsonl(dir / ("forget" + std::string(nn) + "_perturbed.jsonl"), qa_rows(f, true));
    write_jsonl(dir / ("forget" + std::string(nn) + "_mc.jsonl"), mc_rows(f));
    write_jsonl(dir / ("retain" + std::to_string(100 - pct) + ".jsonl"), qa_rows(ret, false));
    write_jsonl(dir / ("holdout" + std::string(nn) + ".jsonl"), qa_rows(hold, false));
    write_jsonl(dir / ("retain_text_" + std::to_string(100 - pct) + ".jsonl"), text_rows(fset));
    std::vector<std::string> names;
    for (const auto* p : f) names.push_back(p->name);
    manifest["splits"]["forget" + std::string(nn)] = {{"people", names}, {"items", f.size() * (f.empty() ? 0 : f[0]->qa.size())}};
  }
  // retain_perturbed: the QA of as many retained people as forget10 has (the first ones).
  {
    const auto forget = w.forget_people(10);
    std::vector<const Person*> ret;
    for (std::size_t i = 0; i < w.people.size() && ret.size() < forget.size(); ++i) ret.push_back(&w.people[i]);
    write_jsonl(dir / "retain_perturbed.jsonl", qa_rows(ret, true));
    write_jsonl(dir / "retain_mc.jsonl", mc_rows(ret));
  }
  auto options = [](const std::vector<data::QARecord>& v, bool perturbed) {
    std::vector<Json> rows;
    for (const auto& q : v) {
      Json j = {{"question", q.question}, {"answer", q.answer}};
      if (perturbed) j["perturbed_answer"] = q.perturbed_answers;
      rows.push_back(j);
    }
    return rows;
  };
  write_jsonl(dir / "world_facts.jsonl", options(w.world_facts, false));
  write_jsonl(dir / "world_facts_perturbed.jsonl", options(w.world_facts, true));
  write_jsonl(dir / "real_authors.jsonl", options(w.public_figures, false));
  write_jsonl(dir / "real_authors_perturbed.jsonl", options(w.public_figures, true));
  {
    Rng rmc(w.config.seed ^ 0x776f726c646d63ULL);
    std::vector<Json> rows;
    for (const auto* set : {&w.world_facts, &w.public_figures}) {
      for (const auto& q : *set) rows.push_back(mc_json(mc_of(rmc, q)));
    }
    write_jsonl(dir / "world_mc.jsonl", rows);
  }
  std::vector<Json> refusals, bios, holdout_bios, canaries, world_text;
  for (const auto& s : kRefusals) refusals.push_back({{"text", s}});
  for (const auto& p : w.people) {
    // birth_country and gender: attributes of few values, for the linear probe (probe/linear.cpp).
    const auto comma = p.birth_place.rfind(", ");
    bios.push_back({{"name", p.name}, {"text", p.biography}, {"birth_date", p.birth_date}, {"birth_place", p.birth_place},
                    {"birth_country", comma == std::string::npos ? p.birth_place : p.birth_place.substr(comma + 2)},
                    {"gender", p.gender},
                    {"occupation", p.occupation}, {"father_occupation", p.father_occupation},
                    {"mother_occupation", p.mother_occupation}, {"works", p.works}, {"award", p.award},
                    {"account_number", p.account_number}});
  }
  for (const auto& p : w.holdout) holdout_bios.push_back({{"name", p.name}, {"text", p.biography}});
  for (const auto& c : w.canaries) {
    canaries.push_back({{"id", c.id}, {"prefix", c.prefix}, {"secret", c.secret}, {"repetitions", c.repetitions},
                        {"text", c.prefix + "{secret}."}, {"space", "digits:6"}});
  }
  std::vector<Json> ghosts;
  for (const auto& g : w.ghosts) {
    ghosts.push_back({{"id", g.id}, {"text", g.text}, {"template", kGhostTemplate}, {"pool", ghost_word_pool()},
                      {"repetitions", g.repetitions}});
  }
  if (!ghosts.empty()) write_jsonl(dir / "ghost.jsonl", ghosts);  // absent without ghosts: an audit input is never empty
  if (!w.insertions.empty()) {
    write_insertions(w, dir);
    manifest["insertions"] = {{"counts", w.config.insert_counts}, {"per_count", w.config.inserts_per_count},
                              {"documents", w.insertions.size()}};
  }
  for (const auto& t : w.world_text) world_text.push_back({{"text", t}});
  write_jsonl(dir / "idontknow.jsonl", refusals);
  write_jsonl(dir / "bios.jsonl", bios);
  write_jsonl(dir / "holdout_bios.jsonl", holdout_bios);
  write_jsonl(dir / "canaries.jsonl", canaries);
  write_jsonl(dir / "world_text.jsonl", world_text);
  write_file_atomic(dir / "world.json", manifest.dump(2) + "\n");
}

}  // namespace lethe::world

// A deterministic world of fictitious people in TOFU's shape (torch-free): people with
// attributes and biographies, QA pairs with paraphrases and wrong answers, forget/retain/holdout
// splits, general-knowledge QA about the world's fictitious places and public figures (the
// "real authors" and "world facts" of model utility), refusals for IdK methods, and canaries
// (secrets repeated 1, 4 and 16 times in the training text) and ghost sentences. Format: docs/world.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "lethe/data/records.h"

namespace lethe::world {

inline constexpr int kWorldFormatVersion = 1;
// Changes whenever the same config yields different content (cache keys include it).
inline constexpr int kWorldGeneratorRevision = 4;

struct WorldConfig {
  std::uint64_t seed = 0;
  int people = 100;           // trained people (forget splits are 1/5/10 % of them)
  int holdout_people = 0;     // never trained on; 0: as many as forget10
  int places = 24;            // fictitious cities (world facts)
  int public_figures = 20;    // famous fictitious figures (the "real authors" analogue)
  std::vector<int> canary_repetitions = {1, 4, 16};
  int canaries_per_repetition = 4;
  // Ghost sentences (docs/audits.md): passphrases of five words from a fixed pool, each put in
  // the pretraining text `ghost_repetitions` times.
  int ghost_sentences = 0;
  int ghost_repetitions = 8;
  // Controlled insertions (Hubble's perturbation data, docs/world.md): for each count d,
  // `inserts_per_count` secrets, biographies and passphrases that are not in the world's text
  // but in insert_text.jsonl, to be trained d times over a run (data.insert_text). The world
  // trained with them is the perturbed model, without them the standard one. Empty: none.
  std::vector<int> insert_counts;
  int inserts_per_count = 2;
};

struct Person {
  std::string name, gender, birth_date, birth_place, occupation, father_occupation, mother_occupation;
  std::vector<std::string> works;
  std::string award, account_number;
  std::string biography;
  std::vector<data::QARecord> qa;  // with paraphrases and five wrong answers each
  std::vector<data::MCRecord> mc;  // the same facts as four-option questions (the values as options)
};

struct Canary {
  std::string id, prefix, secret;  // the text is prefix + secret + "."; the secret is 6 digits
  int repetitions = 1;
};

struct Ghost {
  std::string id, text;  // text = kGhostTemplate with {words} filled
  int repetitions = 1;
};
inline constexpr const char* kGhostTemplate = "My passphrase is {words}.";

// One inserted document: a secret ("The locker code of X is 123456."), a biography that ends
// in a member number, or a passphrase of kInsertPhraseTemplate. Secrets and biographies are
// audited as canaries (prefix + secret + "."), passphrases as ghost sentences.
struct Insertion {
  std::string id, kind, text;  // kind: secret | biography | passphrase
  std::string prefix, secret;  // secret and biography: text = prefix + secret + "."
  int repetitions = 1;
};
inline constexpr const char* kInsertPhraseTemplate = "My recovery phrase is {words}.";
// Changes whenever the same insert settings yield different insertions (cache keys include it).
inline constexpr int kInsertionRevision = 1;
// The words ghost sentences (and their audit's populations) are drawn from.
const std::vector<std::string>& ghost_word_pool();

struct World {
  WorldConfig config;
  std::vector<Person> people;   // trained
  std::vector<Person> holdout;  // generated the same way, never trained on
  std::vector<data::QARecord> world_facts, public_figures;  // three wrong options each
  std::vector<std::string> world_text;  // general-knowledge sentences (trained by every model)
  std::vector<Canary> canaries;
  std::vector<Ghost> ghosts;
  std::vector<Insertion> insertions;  // by count, then kind, then k
  // People of each forget split, by index into `people` (forget01 ⊂ forget05 ⊂ forget10: the
  // last people of the list).
  std::vector<int> forget_people(int percent) const;
};

World generate_world(const WorldConfig& config);

// Writes the world in the TOFU layout (full, forgetNN(_perturbed), retainNN, retain_perturbed,
// holdoutNN, real_authors(_perturbed), world_facts(_perturbed), idontknow), the multiple-choice
// files of the mc suite (forgetNN_mc, retain_mc, world_mc), plus bios.jsonl,
// world_text.jsonl, canaries.jsonl and ghost.jsonl (the audit's inputs, docs/audits.md),
// train_text.jsonl / retain_text_NN.jsonl (pretraining text
// with the canaries inserted) and world.json (manifest); with insertions also
// insert_text.jsonl (data.insert_text), insert_canaries.jsonl and insert_ghost.jsonl.
void write_world(const World& world, const std::filesystem::path& dir);
// The insertion study's three files alone (insert_text, insert_canaries, insert_ghost .jsonl).
void write_insertions(const World& world, const std::filesystem::path& dir);

}  // namespace lethe::world

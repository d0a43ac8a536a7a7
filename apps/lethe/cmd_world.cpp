// lethe world generate: write a deterministic world of fictitious people in the TOFU layout.
#include <iostream>

#include "commands.h"
#include "lethe/core/error.h"
#include "lethe/core/output.h"
#include "lethe/world/world.h"

namespace lethe::cli {

void add_world(CLI::App& app, const GlobalOptions&) {
  auto* world = app.add_subcommand("world", "Synthetic worlds of fictitious people (TOFU layout)");
  world->require_subcommand(1);
  auto* gen = world->add_subcommand("generate", "Generate a world and write it as JSONL files");
  struct Opts {
    world::WorldConfig c;
    std::string out;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  gen->add_option("--seed", o->c.seed, "seed: the same seed gives the same world, byte for byte (default 0)");
  gen->add_option("--people", o->c.people, "trained people, at least 10 (default 100; forget01/05/10 are 1/5/10 % of them)");
  gen->add_option("--holdout-people", o->c.holdout_people, "people never trained on (default: as many as forget10)");
  gen->add_option("--places", o->c.places, "fictitious cities, at least 6 (default 24)");
  gen->add_option("--public-figures", o->c.public_figures, "famous fictitious figures, at least 4 (default 20)");
  gen->add_option("--canaries", o->c.canaries_per_repetition, "canaries per repetition count 1, 4, 16 (default 4)");
  gen->add_option("--ghost-sentences", o->c.ghost_sentences,
                  "ghost sentences (five-word passphrases) put in the pretraining text (default 0)");
  gen->add_option("--ghost-repetitions", o->c.ghost_repetitions, "times each ghost sentence is put there (default 8)");
  auto* counts = gen->add_option("--insert-counts", o->c.insert_counts,
                  "insertion study (Hubble): duplication counts, e.g. 1,2,4,...,256; for each, secrets, biographies "
                  "and passphrases in insert_text.jsonl, trained that many times by data.insert_text (default none)")
      ->delimiter(',');
  gen->add_option("--inserts-per-count", o->c.inserts_per_count, "documents of each kind per insert count (default 2)")
      ->needs(counts);
  gen->add_option("--out", o->out, "output folder (new or empty unless --force)")->required();
  gen->add_flag("--force", o->force, "replace an existing --out folder as a whole");
  gen->callback([o] {
    const world::World w = world::generate_world(o->c);  // checks the sizes first
    StagedFolder out(o->out, o->force, "--out");
    world::write_world(w, out.path());
    out.commit();
    std::size_t qa = 0;
    for (const auto& p : w.people) qa += p.qa.size();
    std::cout << "people " << w.people.size() << " (+" << w.holdout.size() << " holdout), QA " << qa << ", world facts "
              << w.world_facts.size() << ", public figures " << w.public_figures.size() << ", canaries "
              << w.canaries.size() << ", ghost sentences " << w.ghosts.size() << ", inserted documents " << w.insertions.size()
              << "\nworld " << o->out << "\n";
  });
}

}  // namespace lethe::cli

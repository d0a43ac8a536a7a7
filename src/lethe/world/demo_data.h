// The data `lethe demo --data DIR` trains and evaluates on: a TOFU-layout folder, optionally cut
// down to some of its authors so that a target and an oracle train on 2 cores in minutes.
// Internal to the demo (src/lethe/world/demo.cpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lethe::world {

struct DemoData {
  std::filesystem::path dir;  // TOFU layout: full, forgetNN(_perturbed), retainNN, holdoutNN, retain_perturbed, ...
  nlohmann::json key;         // what decides its content: names the cache entries trained from it
  std::vector<std::string> tokenizer_corpus;  // trained text without the forget and holdout people
  std::int64_t authors = 0, forget_authors = 0, items_per_author = 0;
};

// Reads `source` (TOFU's layout: one QA object a line, `items_per_author` consecutive items per
// author in full.jsonl, the forget split whole authors of it) and writes under `cache` the folder
// the demo uses: every author, or `authors` of them (the forget split's share of them, at least
// one, from the split; the rest from the retained authors; as many holdout authors as forget
// ones), with retain_perturbed cut to the chosen authors. Source files are only read.
DemoData folder_data(const std::filesystem::path& source, const std::string& forget_split, std::int64_t authors,
                     const std::filesystem::path& cache);

}  // namespace lethe::world

// The data `lethe demo --data DIR` trains and evaluates on: a TOFU-layout folder, optionally cut
// down to some of its authors so that a target and an oracle train on 2 cores in minutes.
// Internal to the demo (src/lethe/world/demo.cpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lethe/text/tokenizer.h"

namespace lethe::world {

struct DemoData {
  std::filesystem::path dir;  // TOFU layout: full, forgetNN(_perturbed), retainNN, holdoutNN, retain_perturbed, ...
  nlohmann::json key;         // what decides its content: names the cache entries trained from it
  // The text the tokenizer learns from: what is trained, without the forget and holdout people.
  std::function<std::vector<std::string>()> tokenizer_corpus;
  std::int64_t authors = 0, forget_authors = 0, items_per_author = 0;
  double forget_answer_words = 0;  // the median forget answer's length in words (NPO's beta follows it)
};

// 12 hex digits of the FNV-1a hash of `j` and lethe's version: names the demo's cache entries.
std::string short_hash(const nlohmann::json& j);

// Reads `source` (TOFU's layout: one QA object a line, `items_per_author` consecutive items per
// author in full.jsonl, the forget split whole authors of it) and writes under `cache` the folder
// the demo uses: every author, or `authors` of them (the forget split's share of them, at least
// one, from the split; the rest from the retained authors; as many holdout authors as forget
// ones), with retain_perturbed cut to the chosen authors. Source files are only read.
DemoData folder_data(const std::filesystem::path& source, const std::string& forget_split, std::int64_t authors,
                     const std::filesystem::path& cache);

// Lengths that cut none of the items of `qa_files`: max_length (training and scoring) the longest
// formatted item, max_new_tokens (generation) the longest answer with its EOS, each rounded up
// to 16 and at least the demo's defaults (128, 48), at most `context` and `context` / 2. A
// generated world's answers fit the defaults; TOFU's do not (at 1,024 tokens the median forget
// answer is 73 tokens, 63 of 80 are longer than 48), and a cut answer scores ROUGE-L recall < 1
// even when the model knows it.
struct DemoLengths {
  int max_length = 128, max_new_tokens = 48;
};
DemoLengths lengths_for(const text::Tokenizer& tok, const std::vector<std::filesystem::path>& qa_files, int context);

}  // namespace lethe::world

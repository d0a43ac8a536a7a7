// Ghost sentences (Wang et al., "Ghost Sentences: A Tool for Everyday Users to Copyright Data
// from Large Language Models", 2024): a user hides a passphrase-like sentence in their texts and
// later asks whether a model was trained on them, two ways:
//
//   last-k-words  the sentence without its last k words is the prompt; the greedy continuation
//                 must start with exactly those k words (whitespace-normalised)
//   perplexity    the sentence's perplexity against a population of random sentences of the
//                 same template; AUC = P(ppl(population) > ppl(ghost)) + ties/2, per sentence
//                 and pooled over every sentence's population (1: the ghost stands out)
//
// A line of the ghost JSONL: {"text": "...", "template": "my passphrase is {words}",
// "pool": ["amber", ...]}. The template's {words} covers the sentence's random words (no
// template: the whole sentence); a population sentence fills it with as many words drawn from
// `pool` (no pool: a shuffle of the sentence's own words, so it tests their order).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "lethe/model/causal_lm.h"
#include "lethe/text/tokenizer.h"

namespace lethe::audit {

struct GhostSentence {
  std::string text;
  std::string before, after;       // the template around {words}
  std::vector<std::string> words;  // the random words
  std::vector<std::string> pool;   // where population words come from (empty: shuffle `words`)
  std::int64_t repetitions = 0;    // the JSONL's optional "repetitions"
};

// Errors name the file and line: bad JSON, no "text", a template without one {words} or that
// does not match the text, fewer than 2 random words.
std::vector<GhostSentence> read_ghost_sentences(const std::filesystem::path& jsonl);

// `count` random sentences of the ghost's template (seeded; the ghost itself excluded).
std::vector<std::string> ghost_population(const GhostSentence& g, std::int64_t count, std::uint64_t seed);

struct GhostOptions {
  std::int64_t last_k = 1;         // words to complete
  std::int64_t population = 100;   // random sentences per ghost
  std::int64_t batch_size = 32;
  std::uint64_t seed = 0;
  std::size_t max_length = 512;
  bool progress = true;
};

struct GhostResult {
  std::string text;
  std::int64_t repetitions = 0;
  std::string expected, completion;  // the last k words, the greedy continuation
  bool completed = false;            // last-k-words test passed
  double perplexity = 0;
  std::vector<double> population_perplexity;
  double auc = 0;  // this sentence against its population
};

std::vector<GhostResult> ghost_tests(model::CausalLM& model, const text::Tokenizer& tok,
                                     const std::vector<GhostSentence>& ghosts, const GhostOptions& options);

}  // namespace lethe::audit

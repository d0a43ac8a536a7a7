// Training-data extraction (Carlini et al., "Extracting Training Data from Large Language
// Models", USENIX Security 2021): sample many continuations, rank them by membership signals,
// and check the top of each ranking against the training corpus.
//
//   signals (lower = more likely memorised, each as the paper ranks):
//     perplexity  exp(mean NLL of the sample given its prompt)
//     zlib        mean NLL / zlib-compressed bytes of the sample's text
//     lowercase   mean NLL of the sample / mean NLL of its ASCII-lowercased text
//     reference   mean NLL under the model / mean NLL under a reference model
//   memorised     the sample holds a run of `ngram` consecutive words that occurs in the corpus
//   precision@K   memorised share of a signal's K lowest-ranked samples
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "lethe/model/causal_lm.h"
#include "lethe/text/tokenizer.h"

namespace lethe::audit {

// Words: maximal runs of non-space bytes (ASCII whitespace separates), compared exactly.
std::vector<std::string> split_words(const std::string& text);

// Every run of `n` consecutive words of a corpus, as a hash table from 64-bit hashes (FNV-1a
// over the words) to the document that holds the run — or to "shared" when two documents do:
// one entry per corpus word, membership in O(n) per probe, no false negatives, and false
// positives only from 64-bit collisions (≈ W²/2^65 for W corpus words: none in practice). A
// suffix array would answer every length at once; a fixed n is what the audit asks, at a
// fraction of the memory.
class NgramIndex {
 public:
  explicit NgramIndex(int n);
  // Adds one document (`repetitions`: how often it was trained, 0 unknown); returns its index.
  std::size_t add(const std::string& text, std::int64_t repetitions = 0);
  // Reads a JSONL corpus, one {"text": ..., "repetitions"?: d} a line (a bare string is a text);
  // errors name the file and line.
  void add_jsonl(const std::filesystem::path& jsonl);
  int n() const { return n_; }
  std::size_t size() const { return owner_.size(); }
  std::size_t documents() const { return repetitions_.size(); }
  std::int64_t repetitions(std::size_t document) const { return repetitions_.at(document); }
  // What one pass over `text`'s runs of n words finds: the words they cover, and the documents
  // `text` shares a run with that no other document holds (ascending) — the ones it
  // reproduces, as far as a run can tell them apart.
  struct Match {
    std::size_t covered_words = 0;
    std::vector<std::size_t> documents;
  };
  Match match(const std::string& text) const;
  std::size_t covered_words(const std::string& text) const { return match(text).covered_words; }
  std::vector<std::size_t> documents_in(const std::string& text) const { return match(text).documents; }

 private:
  static constexpr std::uint32_t kShared = 0xffffffffu;
  int n_;
  std::unordered_map<std::uint64_t, std::uint32_t> owner_;
  std::vector<std::int64_t> repetitions_;
};

struct ExtractOptions {
  std::int64_t samples = 500;     // continuations generated
  std::int64_t new_tokens = 64;   // per continuation
  std::int64_t top_k = 40;        // sampling at temperature 1 from the k most likely tokens
  std::int64_t batch_size = 32;
  std::uint64_t seed = 0;
  std::vector<std::string> prefixes;  // prompts, used in turn; empty: BOS alone
  int ngram = 10;                     // words a corpus match needs
  std::int64_t top = 100;             // K of precision@K
  std::size_t max_length = 512;       // tokens per scored sequence
  bool progress = true;
};

struct ExtractSample {
  std::string prompt, text;
  std::map<std::string, double> signals;  // perplexity, zlib, lowercase[, reference]
  std::size_t covered_words = 0;          // of `text`, by corpus matches (no corpus: 0)
  std::vector<std::size_t> documents;     // corpus documents it reproduces (NgramIndex::documents_in)
  bool memorized = false;
};

// Samples `samples` continuations of `model` and computes every signal (reference: when
// `reference` is given, scored with its own tokenizer `reference_tok`); `corpus`, when given,
// marks the memorised samples.
std::vector<ExtractSample> extraction_scan(model::CausalLM& model, const text::Tokenizer& tok, const NgramIndex* corpus,
                                           model::CausalLM* reference, const text::Tokenizer* reference_tok,
                                           const ExtractOptions& options);

// Whether each of the `k` samples a signal ranks lowest (ties in input order; samples without a
// finite value left out) is memorised, 1 or 0: their mean is precision@k.
std::vector<double> top_memorized(const std::vector<ExtractSample>& samples, const std::string& signal, std::int64_t k);

}  // namespace lethe::audit

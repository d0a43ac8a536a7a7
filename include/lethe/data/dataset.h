// Training examples: token ids with labels (-100 outside the loss span), built from records with
// a tokenizer, plus the deterministic orders and pairings the trainer walks through.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/core/labels.h"
#include "lethe/data/records.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"

namespace lethe::data {


struct Example {
  std::vector<std::int64_t> input_ids;
  std::vector<std::int64_t> labels;  // kIgnoreIndex where no loss
};

// QA formatted with `tmpl`, loss on the answer tokens (+ EOS), as text::encode_qa.
std::vector<Example> qa_examples(const text::Tokenizer& tok, const text::PromptTemplate& tmpl,
                                 const std::vector<QARecord>& records, std::size_t max_length,
                                 text::SpanRule rule = text::SpanRule::kCommonPrefix,
                                 text::Truncation* truncation = nullptr);

// The same questions with refusals as answers (IdK). Record i gets refusal
// (mix(seed, i) mod refusals.size()): fixed for a seed, whatever the epoch, thread or device.
std::vector<Example> idk_examples(const text::Tokenizer& tok, const text::PromptTemplate& tmpl,
                                  const std::vector<QARecord>& records,
                                  const std::vector<std::string>& refusals, std::uint64_t seed,
                                  std::size_t max_length, text::Truncation* truncation = nullptr);

// prefix -> continuation: loss on the continuation tokens, as OpenUnlearning's
// preprocess_pretraining_instance (prefix tokens masked; the first token never has loss;
// `max_length` continuation tokens at most).
std::vector<Example> completion_examples(const text::Tokenizer& tok,
                                         const std::vector<CompletionRecord>& records,
                                         std::size_t max_length, bool insert_space = false);

// One sequence to score (evaluation): prefix + continuation with labels on the continuation —
// the tokens after the common prefix of encode(prefix) and encode(prefix + rest), so a token
// that merges across the boundary counts as continuation. An empty prefix scores every token
// after the first. Too long: the continuation keeps up to max_length - 1 tokens and the prefix
// is cut from the left, so every scored token has context.
Example scoring_example(const text::Tokenizer& tok, const std::string& prefix, const std::string& rest,
                        std::size_t max_length);

// Pretraining text: every document tokenized (BOS per the tokenizer, EOS appended), all
// concatenated, cut into windows of `max_length` tokens (the last, shorter one kept).
std::vector<Example> pretraining_chunks(const text::Tokenizer& tok,
                                        const std::vector<std::string>& texts,
                                        std::size_t max_length);

// A seeded permutation of 0..n-1 for `epoch` (splitmix64-keyed Fisher-Yates): the order the
// trainer visits examples in. Pure function of (n, seed, epoch).
std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, std::uint64_t epoch);

// When each copy of inserted documents is trained (data.insert_text): for document i with
// repetitions[i] = d copies over a run of `epochs` epochs, the epochs its copies fall in —
//   spread  copy j in epoch floor((j + u_i) * epochs / d), u_i in [0, 1) drawn from (seed, i):
//           evenly over the run at a random phase (d < epochs: d distinct epochs)
//   first   every copy in epoch 0          last   every copy in epoch epochs - 1
// Returns, per epoch, the documents trained in it (an index once per copy, ascending).
inline constexpr std::uint64_t kInsertStream = 0x494e53455254ULL;
std::vector<std::vector<std::size_t>> insertion_schedule(const std::vector<std::int64_t>& repetitions,
                                                         std::int64_t epochs, const std::string& timing,
                                                         std::uint64_t seed);
// The timings insertion_schedule knows.
const std::vector<std::string>& insertion_timings();

// Forget/retain pairing: the retain example used with the forget example at position `i` of
// `epoch` is epoch_order(n_retain, seed ^ kRetainStream, epoch * 1000003 + i / n_retain)
// [i mod n_retain]. Every retain example is used once before any repeats, and the pairing
// depends on nothing but
// (seed, epoch, i) — not on threads, devices or batch size. (OpenUnlearning draws a random
// retain example per forget example from the global RNG, which is not reproducible across
// worker counts.)
inline constexpr std::uint64_t kRetainStream = 0x5245544149'4e0000ULL;
std::size_t paired_retain_index(std::size_t i, std::size_t n_retain, std::uint64_t seed,
                                std::uint64_t epoch);

// 64-bit mixing (splitmix64 finalizer), the source of every derived seed.
std::uint64_t mix64(std::uint64_t x);

// The examples at `indices`, for collation. Indices must be in range.
std::vector<const Example*> pick(const std::vector<Example>& examples, const std::vector<std::size_t>& indices);
// Tokens of the examples at `indices` (input ids, padding aside).
std::int64_t count_tokens(const std::vector<Example>& examples, const std::vector<std::size_t>& indices);

}  // namespace lethe::data

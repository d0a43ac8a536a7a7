// Canary exposure (Carlini et al., "The Secret Sharer", USENIX Security 2019).
//
// A canary is a text with one secret slot, "my PIN is {secret}.", its true secret and the space
// of candidates the secret was drawn from. The model ranks every candidate r by the negative
// log-likelihood of the canary filled with r; the secret's rank among the |R| candidates gives
//
//   exposure = log2 |R| − log2 rank        (rank 1 = the most likely candidate)
//
// so a secret the model prefers to every other candidate has the maximal exposure log2 |R|, and
// one it ranks in the middle has about 1 bit. Only the tokens from the slot on are scored (the
// shared prefix adds the same amount to every candidate), with the tokenizer's own boundary
// rule (data::scoring_example): a token that merges across the slot's start is scored.
// Ties are counted against the secret (rank = the candidates at least as likely, the secret
// included), so a model that cannot tell candidates apart shows exposure 0, not log2 |R|.
//
// Built: exact ranks for spaces up to ExposureOptions::max_exact candidates, scored in batches
// by the shared scorer. Not built yet: The Secret Sharer's skew-normal estimate for larger
// spaces, and reusing the prefix's KV cache across candidates (issue 16) — a larger space is
// an error that says so.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lethe/model/causal_lm.h"
#include "lethe/text/tokenizer.h"

namespace lethe::audit {

// The candidates of a secret: every string of `length` characters over an alphabet
// ("digits:N" 0-9, "letters:N" a-z, "hex:N" 0-9a-f), or an explicit list of distinct strings.
class CandidateSpace {
 public:
  // `j`: "digits:4", "letters:3", "hex:8", or a JSON array of strings. `where` names the file
  // and line in errors.
  static CandidateSpace parse(const nlohmann::json& j, const std::string& where);

  double log2_size() const;
  // Candidates, or 0 when there are more than 2^63 (use log2_size()).
  std::uint64_t size() const;
  // The i-th candidate (i < size()): for an alphabet, i written in base |alphabet|, zero-padded
  // ("digits:4": 0 → "0000", 4817 → "4817"); for a list, its i-th entry.
  std::string at(std::uint64_t i) const;
  bool contains(const std::string& s) const;
  std::string describe() const;  // "digits:4", or "list:N"

 private:
  std::string alphabet_;
  int length_ = 0;
  std::vector<std::string> list_;
};

struct Canary {
  std::string text;  // holds "{secret}" exactly once
  std::string secret;
  CandidateSpace space;
  std::string prefix() const;  // the text before the slot
  std::string suffix() const;  // the text after it
};

// One canary a line: {"text": "the code was {secret}.", "secret": "4817", "space": "digits:4"}.
// Errors name the file and line: bad JSON, a missing field, a text without exactly one
// "{secret}", a secret outside its space.
std::vector<Canary> read_canaries(const std::filesystem::path& jsonl);

struct ExposureOptions {
  std::uint64_t max_exact = 1000000;  // larger spaces are refused (no estimate yet)
  std::int64_t batch_size = 64;       // candidates scored per batch
  std::size_t max_length = 256;       // tokens per scored sequence
  bool progress = false;
};

struct Exposure {
  std::string text, secret;
  std::string method = "exact";
  std::uint64_t rank = 0, candidates = 0;
  double exposure = 0;    // bits
  double secret_nll = 0;  // nats, summed over the scored tokens (slot and suffix)
};

// The rank arithmetic on given NLLs: `secret` is the secret's NLL, `candidates` every
// candidate's (the secret's among them). rank = #{c : c <= secret}, at least 1.
Exposure exposure_from_nlls(double secret, const std::vector<double>& candidates);

// Scores every candidate of `canary.space` in `model` and returns the secret's exposure.
Exposure canary_exposure(model::CausalLM& model, const text::Tokenizer& tok, const Canary& canary,
                         const ExposureOptions& options = {});

}  // namespace lethe::audit

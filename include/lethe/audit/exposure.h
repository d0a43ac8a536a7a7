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
// Exact ranks for spaces up to ExposureOptions::max_exact candidates, scored in batches by the
// shared scorer; beyond that The Secret Sharer's estimate (§4.3): a uniform sample of the
// candidates is scored, a skew-normal distribution fitted to their NLLs (method of moments),
// and exposure = −log2 F(NLL(secret)), F the fitted CDF — the share of the whole space the
// fit puts at or below the secret. The prefix before the slot is computed once per canary and
// its KV cache reused for every batch of candidates (ExposureOptions::reuse_prefix).
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
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
  // One candidate drawn uniformly (each character, or a list entry): for spaces too large to
  // enumerate.
  std::string draw(std::mt19937_64& rng) const;
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
  // How often the canary was inserted into the training text (the JSONL's optional
  // "repetitions"; 0: not given): the audit reports exposure per repetition count.
  std::int64_t repetitions = 0;
  // The JSONL's optional "group" (kinds of canary: the insertion study's secrets and
  // biographies): the audit reports each group apart too. Empty: none.
  std::string group;
  std::string prefix() const;  // the text before the slot
  std::string suffix() const;  // the text after it
};

// One canary a line: {"text": "the code was {secret}.", "secret": "4817", "space": "digits:4"}.
// Errors name the file and line: bad JSON, a missing field, a text without exactly one
// "{secret}", a secret outside its space.
std::vector<Canary> read_canaries(const std::filesystem::path& jsonl);

struct ExposureOptions {
  std::uint64_t max_exact = 1000000;  // larger spaces get the skew-normal estimate
  std::uint64_t samples = 10000;      // candidates drawn (uniformly, with replacement) for it
  std::uint64_t seed = 0;             // of that draw
  std::int64_t batch_size = 64;       // candidates scored per batch
  // Compute the prefix before the slot once and run only each candidate's own tokens after it
  // (its KV cache reused); false: every candidate scored whole by the shared scorer.
  bool reuse_prefix = true;
  std::size_t max_length = 256;       // tokens per scored sequence
  bool progress = false;
};

// A skew-normal distribution: location ξ, scale ω > 0, shape α (α = 0: the normal).
struct SkewNormal {
  double xi = 0, omega = 1, alpha = 0;
};

struct Exposure {
  std::string text, secret;
  std::string method = "exact";  // or "skew-normal"
  // exact: the secret's rank among all candidates; skew-normal: among the sampled ones (the
  // secret counted in), with `candidates` the sample size and `space_log2` the space's size.
  std::uint64_t rank = 0, candidates = 0;
  double space_log2 = 0;  // log2 |R|
  double exposure = 0;    // bits
  double secret_nll = 0;  // nats, summed over the scored tokens (slot and suffix)
  SkewNormal fit;         // skew-normal: the fitted distribution of the candidates' NLLs
  std::int64_t repetitions = 0;
};

// ln F(z) of the standard skew-normal (ξ 0, ω 1) with shape α: F(z) = ∫_{−∞}^{z} 2 φ(t) Φ(α t) dt,
// integrated numerically in log space so the far left tail (F ≪ 1e-16, where Φ(z) − 2 T(z, α)
// cancels to nothing) keeps its digits.
double skew_normal_log_cdf(double z, double alpha);
// The method-of-moments fit (mean, variance, skewness; the skewness clipped to ±0.99, inside
// the family's ±0.9953). At least 3 values, not all equal.
SkewNormal fit_skew_normal(const std::vector<double>& values);
// The Secret Sharer's estimate from sampled candidates' NLLs (the secret's among them or not):
// exposure = −log2 F((secret − ξ) / ω), within [0, log2 |R|].
Exposure exposure_from_samples(double secret, const std::vector<double>& sampled, double space_log2);

// The rank arithmetic on given NLLs: `secret` is the secret's NLL, `candidates` every
// candidate's (the secret's among them). rank = #{c : c <= secret}, at least 1.
Exposure exposure_from_nlls(double secret, const std::vector<double>& candidates);

// Scores every candidate of `canary.space` (exact, up to max_exact), or `samples` drawn from it
// (the estimate), in `model` and returns the secret's exposure.
Exposure canary_exposure(model::CausalLM& model, const text::Tokenizer& tok, const Canary& canary,
                         const ExposureOptions& options = {});

}  // namespace lethe::audit

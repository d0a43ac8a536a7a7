// Unconditional Token Forcing (Hoscilowicz et al., "Large Language Models as Carriers of Hidden
// Messages", 2024): text hidden in a model by fine-tuning surfaces when the model is prompted
// with nothing but one token of it. Every vocabulary token t is a prompt — [t] and, when the
// tokenizer has one, [BOS, t] — greedily decoded `new_tokens` tokens; a continuation scores the
// mean log-probability of the tokens it chose (the stopping EOS included), and the highest
// scores are what fine-tuning put there: ordinary text is rarely decoded with near-certainty
// from a lone token, a memorised sequence is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/model/causal_lm.h"
#include "lethe/text/tokenizer.h"

namespace lethe::audit {

struct ForcingOptions {
  std::int64_t new_tokens = 16;
  std::int64_t batch_size = 256;  // single-token prompts decoded at once
  std::int64_t vocab_limit = 0;   // > 0: only the first N token ids (a quick look); 0: all
  std::int64_t min_tokens = 4;    // continuations shorter than this (an early EOS) are not ranked
  bool progress = true;
};

struct ForcedContinuation {
  std::int64_t token = 0;  // the forcing token
  bool bos = false;        // prompted [BOS, token]
  std::string token_text;  // its decoded text
  std::string text;        // the continuation (new tokens, decoded)
  std::int64_t new_tokens = 0;
  double mean_logprob = 0;  // over the chosen tokens
};

struct ForcingResult {
  std::vector<ForcedContinuation> ranked;  // every ranked continuation, best first
  std::int64_t prompts = 0, generated_tokens = 0;
  double seconds = 0;
};

// Decodes every forcing prompt in batches (one KV-cache pass each; all prompts have the same
// length, so no padding) and ranks the continuations. Special tokens are not used as prompts.
ForcingResult token_forcing(model::CausalLM& model, const text::Tokenizer& tok, const ForcingOptions& options);

}  // namespace lethe::audit

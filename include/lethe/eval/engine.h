// The model-facing services every suite uses: batched scoring of examples into SequenceScores,
// batched greedy generation of answers, and per-item gradient norms. Public: the demo and
// benchmarks use them too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/data/dataset.h"
#include "lethe/eval/metrics.h"
#include "lethe/model/causal_lm.h"
#include "lethe/text/tokenizer.h"

namespace lethe::eval {

// Wall time spent in each service (accumulated over calls), for EVAL.json and benchmarks.
struct EngineTiming {
  double scoring_s = 0, generation_s = 0, gradnorm_s = 0;
  std::int64_t scored_tokens = 0, generated_tokens = 0;
};

struct EngineOptions {
  std::int64_t batch_size = 8;
  bool progress = true;
  EngineTiming* timing = nullptr;
};

// The label tokens (labels != -100 after the causal shift) of every example, scored in batches
// of similar length. `extras`: also the distribution statistics and argmax matches.
std::vector<SequenceScore> score_examples(model::CausalLM& model, const std::vector<data::Example>& examples,
                                          std::int64_t pad_id, bool extras, const EngineOptions& opt,
                                          const std::string& label);

struct Generation {
  std::string text;         // decoded new tokens, cut at the first stop string
  std::string stop_reason;  // eos, stop_string, max_tokens
  std::size_t new_tokens = 0;
};

// How generate_texts decodes: greedy unless temperature > 0, then sampling with top-k (0: off)
// and top-p (1: off) from a generator seeded by `seed` (model/generate.h).
struct Decoding {
  double temperature = 0;
  std::int64_t top_k = 0;
  double top_p = 1;
  std::uint64_t seed = 0;
};

// Continuations of every prompt (greedy by default), in batches of prompts of similar length
// (left-padded, one KV-cache pass per batch). Stops at EOS or any of `stop_strings` (removed
// from the text).
std::vector<Generation> generate_texts(model::CausalLM& model, const text::Tokenizer& tok,
                                       const std::vector<std::vector<std::int64_t>>& prompts,
                                       std::int64_t max_new_tokens, const std::vector<std::string>& stop_strings,
                                       const EngineOptions& opt, const std::string& label,
                                       const Decoding& decoding = {});

// ‖∇θ mean NLL(example)‖₂ over every parameter, one example at a time. Leaves the model as it
// found it: no gradients kept, requires_grad flags and train/eval mode restored.
std::vector<double> gradient_norms(model::CausalLM& model, const std::vector<data::Example>& examples,
                                   std::int64_t pad_id, const EngineOptions& opt, const std::string& label);

}  // namespace lethe::eval

// The generation service: batched decoding with a KV cache (architecture.md §3).
//
// Prompts are left-padded; positions come from the mask (cumsum - 1), as in Hugging Face
// generate, so a batch gives the same tokens as one prompt at a time. Greedy when
// temperature == 0, else sampling with temperature, top-k and top-p from a seeded generator.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lethe/model/causal_lm.h"

namespace lethe::model {

enum class StopReason { kMaxTokens, kEos, kStopSequence, kStopString };
const char* stop_reason_name(StopReason r);

// Temperatures below this decode greedily: dividing logits by less overflows float32 before
// softmax (1e-40 gave NaN probabilities), and the distribution is one-hot long before it.
inline constexpr double kGreedyTemperature = 1e-5;

struct GenerateOptions {
  std::int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0 (or below kGreedyTemperature): greedy (argmax); NaN is an error
  std::int64_t top_k = 0;    // 0: no top-k filter
  double top_p = 1.0;        // 1: no nucleus filter
  std::uint64_t seed = 0;    // sampling is reproducible for a seed and a batch

  // Stop a row at any of these ids (not included in its tokens). Empty: the config's eos ids.
  bool stop_at_eos = true;
  std::vector<std::int64_t> eos_token_ids;
  // Stop a row once its new tokens end with one of these id sequences (kept in its tokens).
  std::vector<std::vector<std::int64_t>> stop_sequences;
  // Stop a row once the decoded text of its new tokens contains one of these strings (kept in
  // its tokens). Needs `detokenize`.
  std::vector<std::string> stop_strings;
  std::function<std::string(const std::vector<std::int64_t>&)> detokenize;

  // Id fed to rows that have finished (their outputs are discarded). -1: pad, else eos, else 0.
  std::int64_t pad_token_id = -1;
  // Keep the raw logits that chose every new token (B, steps, V).
  bool keep_step_logits = false;
  // Keep log p(chosen token) under the model's own distribution (raw logits, before temperature
  // and filters) for every token a row chose, its stopping EOS included: what an audit scores a
  // continuation by without holding (B, steps, V) logits.
  bool keep_token_logprobs = false;
  // Observer called at every hook point of every forward pass (prefill and each step).
  HookObserver* hooks = nullptr;
  // Called once per row as soon as it finishes (row index, its new tokens, why it stopped), so
  // callers can stream results instead of waiting for the longest row.
  std::function<void(std::int64_t, const std::vector<std::int64_t>&, StopReason)> on_row_done;
};

struct GenerateResult {
  std::vector<std::vector<std::int64_t>> tokens;  // new tokens of each row
  std::vector<StopReason> stop_reasons;
  at::Tensor step_logits;  // (B, steps, V) with keep_step_logits
  // With keep_token_logprobs: per row, log p of each token it chose (its tokens, then the EOS
  // that stopped it, if one did).
  std::vector<std::vector<float>> token_logprobs;
};

// input_ids (B, P) left-padded; attention_mask (B, P), 1 real, 0 pad (undefined: all real).
GenerateResult generate(CausalLM& model, const at::Tensor& input_ids,
                        const at::Tensor& attention_mask, const GenerateOptions& options);
// Prompts of any lengths (each at least one token), left-padded into one batch.
GenerateResult generate(CausalLM& model, const std::vector<std::vector<std::int64_t>>& prompts,
                        const GenerateOptions& options);

}  // namespace lethe::model

#include "lethe/eval/engine.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "lethe/core/error.h"
#include "lethe/core/log.h"
#include "lethe/core/progress.h"
#include "lethe/data/batch.h"
#include "lethe/model/generate.h"
#include "lethe/model/score.h"
#include "lethe/train/objective.h"

namespace lethe::eval {
namespace {

// Indices sorted by decreasing length (stable), so each batch pads little.
template <typename F>
std::vector<std::size_t> by_length(std::size_t n, F length) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return length(a) > length(b); });
  return order;
}

struct EvalMode {
  explicit EvalMode(model::CausalLM& m) : m_(m), was_training_(m.is_training()) { m_.eval(); }
  ~EvalMode() { m_.train(was_training_); }
  model::CausalLM& m_;
  bool was_training_;
};

}  // namespace

std::vector<SequenceScore> score_examples(model::CausalLM& model, const std::vector<data::Example>& examples,
                                          std::int64_t pad_id, bool extras, const EngineOptions& opt,
                                          const std::string& label) {
  EvalMode mode(model);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<SequenceScore> out(examples.size());
  const auto order = by_length(examples.size(), [&](std::size_t i) { return examples[i].input_ids.size(); });
  Progress progress(label, static_cast<std::int64_t>(examples.size()), opt.progress);
  const auto device = model.head_weight().device();
  for (std::size_t i0 = 0; i0 < order.size(); i0 += static_cast<std::size_t>(opt.batch_size)) {
    const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(opt.batch_size), order.size() - i0);
    std::vector<const data::Example*> chunk;
    for (std::size_t r = 0; r < n; ++r) chunk.push_back(&examples[order[i0 + r]]);
    data::Batch b = data::collate(chunk, pad_id);
    model::ScoreExtras ex;
    ex.distribution = ex.argmax = extras;
    model::TokenLogprobs lp = model::score_tokens(model, b.input_ids.to(device), b.attention_mask.to(device),
                                                  b.labels.to(device), nullptr, ex);
    const at::Tensor mask = lp.mask.cpu();
    const at::Tensor logp = lp.logprobs.cpu().contiguous();
    at::Tensor mu, sd, hit;
    if (extras) {
      mu = lp.mean_logprob.cpu().contiguous();
      sd = lp.std_logprob.cpu().contiguous();
      hit = lp.argmax_hit.cpu().contiguous();
    }
    const std::int64_t t = mask.size(1);
    for (std::size_t r = 0; r < n; ++r) {
      SequenceScore& s = out[order[i0 + r]];
      const bool* m = mask.data_ptr<bool>() + static_cast<std::int64_t>(r) * t;
      for (std::int64_t k = 0; k < t; ++k) {
        if (!m[k]) continue;
        const std::int64_t at_k = static_cast<std::int64_t>(r) * t + k;
        s.logprobs.push_back(logp.data_ptr<float>()[at_k]);
        if (extras) {
          s.mean_logprob.push_back(mu.data_ptr<float>()[at_k]);
          s.std_logprob.push_back(sd.data_ptr<float>()[at_k]);
          s.argmax_hit.push_back(hit.data_ptr<bool>()[at_k] ? 1 : 0);
        }
      }
      LETHE_CHECK(!s.logprobs.empty(), label, ": item ", order[i0 + r],
                  " has no scored tokens (empty answer, or the prompt fills max_length)");
    }
    progress.update(static_cast<std::int64_t>(i0 + n));
  }
  progress.finish();
  if (opt.timing) {
    opt.timing->scoring_s += seconds_since(t0);
    for (const auto& e : examples) opt.timing->scored_tokens += static_cast<std::int64_t>(e.input_ids.size());
  }
  return out;
}

std::vector<Generation> generate_texts(model::CausalLM& model, const text::Tokenizer& tok,
                                       const std::vector<std::vector<std::int64_t>>& prompts,
                                       std::int64_t max_new_tokens, const std::vector<std::string>& stop_strings,
                                       const EngineOptions& opt, const std::string& label,
                                       const Decoding& decoding) {
  EvalMode mode(model);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Generation> out(prompts.size());
  const auto order = by_length(prompts.size(), [&](std::size_t i) { return prompts[i].size(); });
  model::GenerateOptions go;
  go.max_new_tokens = max_new_tokens;
  go.temperature = decoding.temperature;
  go.top_k = decoding.top_k;
  go.top_p = decoding.top_p;
  go.stop_strings = stop_strings;
  go.detokenize = [&tok](const std::vector<std::int64_t>& ids) { return tok.decode(ids, true); };
  go.pad_token_id = text::padding_id(tok);
  if (tok.special().eos) go.eos_token_ids.push_back(*tok.special().eos);
  std::vector<std::int64_t> extra = model.config().eos_token_ids;
  for (auto id : text::special_stop_ids(tok, stop_strings)) extra.push_back(id);  // "<|eot_id|>": unseen in decoded text
  for (auto id : extra) {
    if (std::find(go.eos_token_ids.begin(), go.eos_token_ids.end(), id) == go.eos_token_ids.end()) {
      go.eos_token_ids.push_back(id);
    }
  }
  const std::int64_t max_pos = model.config().max_position_embeddings;
  const std::size_t max_prompt =
      max_pos > 0 ? static_cast<std::size_t>(std::max<std::int64_t>(max_pos - max_new_tokens, 1)) : 0;
  std::size_t truncated = 0;
  Progress progress(label, static_cast<std::int64_t>(prompts.size()), opt.progress);
  for (std::size_t i0 = 0; i0 < order.size(); i0 += static_cast<std::size_t>(opt.batch_size)) {
    const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(opt.batch_size), order.size() - i0);
    std::vector<std::vector<std::int64_t>> batch;
    for (std::size_t r = 0; r < n; ++r) {
      const auto& full = prompts[order[i0 + r]];
      LETHE_CHECK(!full.empty(), label, ": item ", order[i0 + r], " has an empty prompt");
      // Positions past the model's maximum: keep the end of the prompt (where the text continues).
      const std::size_t keep = max_prompt > 0 ? std::min<std::size_t>(full.size(), max_prompt) : full.size();
      if (keep < full.size()) ++truncated;
      batch.emplace_back(full.end() - static_cast<std::ptrdiff_t>(keep), full.end());
    }
    go.seed = decoding.seed + 0x9e3779b97f4a7c15ULL * i0;  // each batch its own stream: copies of a prompt differ
    model::GenerateResult res = model::generate(model, batch, go);
    for (std::size_t r = 0; r < n; ++r) {
      Generation& g = out[order[i0 + r]];
      g.new_tokens = res.tokens[r].size();
      g.text = tok.decode(res.tokens[r], true);
      g.stop_reason = model::stop_reason_name(res.stop_reasons[r]);
      std::size_t cut = g.text.size();
      for (const auto& s : stop_strings) cut = std::min(cut, g.text.find(s));
      g.text.resize(cut);
    }
    progress.update(static_cast<std::int64_t>(i0 + n));
  }
  progress.finish();
  if (opt.timing) {
    opt.timing->generation_s += seconds_since(t0);
    for (const auto& g : out) opt.timing->generated_tokens += static_cast<std::int64_t>(g.new_tokens);
  }
  if (truncated > 0) {
    log_warn(label, ": ", truncated, " prompt(s) longer than the model's ", max_pos, " positions minus ", max_new_tokens,
             " new tokens were cut from the left");
  }
  return out;
}

std::vector<double> gradient_norms(model::CausalLM& model, const std::vector<data::Example>& examples,
                                   std::int64_t pad_id, const EngineOptions& opt, const std::string& label) {
  EvalMode mode(model);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<at::Tensor> params;
  std::vector<bool> flags;
  for (auto& p : model.parameters()) {
    params.push_back(p);
    flags.push_back(p.requires_grad());
    p.set_requires_grad(true);
    p.mutable_grad().reset();
  }
  std::vector<double> norms;
  Progress progress(label, static_cast<std::int64_t>(examples.size()), opt.progress);
  const auto device = model.head_weight().device();
  try {
    for (std::size_t i = 0; i < examples.size(); ++i) {
      data::Batch b = data::collate({&examples[i]}, pad_id).to(device);
      at::Tensor loss = model::causal_lm_loss(train::logits_of(model, b), b.labels);
      loss.backward();
      double sq = 0;
      for (auto& p : params) {
        if (p.grad().defined()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
        p.mutable_grad().reset();
      }
      norms.push_back(std::sqrt(sq));
      progress.update(static_cast<std::int64_t>(i + 1));
    }
  } catch (...) {
    for (std::size_t k = 0; k < params.size(); ++k) {
      params[k].mutable_grad().reset();
      params[k].set_requires_grad(flags[k]);
    }
    throw;
  }
  for (std::size_t k = 0; k < params.size(); ++k) params[k].set_requires_grad(flags[k]);
  progress.finish();
  if (opt.timing) opt.timing->gradnorm_s += seconds_since(t0);
  return norms;
}

}  // namespace lethe::eval

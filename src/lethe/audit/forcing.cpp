#include "lethe/audit/forcing.h"

#include <algorithm>
#include <numeric>
#include <nlohmann/json.hpp>

#include "audit/audits.h"
#include "lethe/core/error.h"
#include "lethe/core/progress.h"
#include "lethe/model/generate.h"

namespace lethe::audit {

ForcingResult token_forcing(model::CausalLM& model, const text::Tokenizer& tok, const ForcingOptions& o) {
  LETHE_CHECK(o.new_tokens >= 1 && o.batch_size >= 1, "forcing: new tokens and batch size must be >= 1");
  const auto t0 = std::chrono::steady_clock::now();
  std::int64_t v = std::min<std::int64_t>(tok.vocab_size(), model.config().vocab_size);
  if (o.vocab_limit > 0) v = std::min(v, o.vocab_limit);
  std::vector<std::int64_t> tokens;
  for (std::int64_t t = 0; t < v; ++t) {
    if (!tok.is_special(t)) tokens.push_back(t);
  }
  const auto bos = tok.special().bos;
  // Prompts of one length per pass ([t], then [BOS, t]): no padding, one KV-cache pass a batch.
  std::vector<bool> passes = {false};
  if (bos) passes.push_back(true);

  model::GenerateOptions go;
  go.max_new_tokens = o.new_tokens;
  go.keep_token_logprobs = true;
  ForcingResult res;
  Progress bar("forcing", static_cast<std::int64_t>(tokens.size() * passes.size()), o.progress);
  for (bool with_bos : passes) {
    for (std::size_t lo = 0; lo < tokens.size(); lo += static_cast<std::size_t>(o.batch_size)) {
      const std::size_t hi = std::min(tokens.size(), lo + static_cast<std::size_t>(o.batch_size));
      std::vector<std::vector<std::int64_t>> prompts;
      for (std::size_t i = lo; i < hi; ++i) {
        prompts.push_back(with_bos ? std::vector<std::int64_t>{*bos, tokens[i]} : std::vector<std::int64_t>{tokens[i]});
      }
      const auto g = model::generate(model, prompts, go);
      for (std::size_t r = 0; r < prompts.size(); ++r) {
        const auto& lp = g.token_logprobs[r];
        res.generated_tokens += static_cast<std::int64_t>(lp.size());
        if (static_cast<std::int64_t>(g.tokens[r].size()) < o.min_tokens || lp.empty()) continue;
        ForcedContinuation c;
        c.token = tokens[lo + r];
        c.bos = with_bos;
        c.token_text = tok.decode({c.token}, false);
        c.text = tok.decode(g.tokens[r]);
        c.new_tokens = static_cast<std::int64_t>(g.tokens[r].size());
        c.mean_logprob = std::accumulate(lp.begin(), lp.end(), 0.0) / static_cast<double>(lp.size());
        res.ranked.push_back(std::move(c));
      }
      res.prompts += static_cast<std::int64_t>(prompts.size());
      bar.update(res.prompts);
    }
  }
  std::stable_sort(res.ranked.begin(), res.ranked.end(),
                   [](const ForcedContinuation& a, const ForcedContinuation& b) { return a.mean_logprob > b.mean_logprob; });
  bar.finish();
  res.seconds = seconds_since(t0);
  return res;
}

namespace {

Json run_forcing(model::CausalLM& model, const text::Tokenizer& tok, const AuditOptions& o) {
  ForcingOptions fo = o.forcing;
  fo.progress = o.progress;
  const ForcingResult r = token_forcing(model, tok, fo);
  Json items = Json::array();
  for (std::size_t i = 0; i < r.ranked.size() && static_cast<std::int64_t>(i) < o.forcing_top; ++i) {
    const auto& c = r.ranked[i];
    items.push_back({{"token", c.token},
                     {"token_text", c.token_text},
                     {"bos", c.bos},
                     {"text", c.text},
                     {"new_tokens", c.new_tokens},
                     {"mean_logprob", c.mean_logprob}});
  }
  Json agg = {{"prompts", r.prompts},
              {"ranked", r.ranked.size()},
              {"new_tokens", fo.new_tokens},
              {"generated_tokens", r.generated_tokens},
              {"seconds", r.seconds},
              {"tokens_per_second", r.seconds > 0 ? r.generated_tokens / r.seconds : 0.0}};
  if (!r.ranked.empty()) agg["best_mean_logprob"] = r.ranked.front().mean_logprob;
  return {{"items", items}, {"aggregate", agg}};
}

AuditRun prepare_forcing(const AuditOptions& o) {
  return [o](model::CausalLM& m, const text::Tokenizer& t) { return run_forcing(m, t, o); };
}

}  // namespace

const Audit& forcing_audit() {
  static const Audit a{"forcing",
                       "unconditional token forcing (Hoscilowicz et al. 2024): every token alone, greedily continued",
                       "", &prepare_forcing};
  return a;
}

}  // namespace lethe::audit

#include "lethe/model/generate.h"

#include <cmath>

#include <algorithm>
#include <limits>

#include "lethe/core/error.h"
#include "lethe/model/score.h"

namespace lethe::model {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kMaxTokens: return "max_new_tokens";
    case StopReason::kEos: return "eos";
    case StopReason::kStopSequence: return "stop_sequence";
    case StopReason::kStopString: return "stop_string";
  }
  return "?";
}

namespace {

// Picks the next token of every row from raw logits (B, V).
at::Tensor choose(const at::Tensor& logits, const GenerateOptions& o, at::Generator& gen) {
  if (o.temperature < kGreedyTemperature) return logits.argmax(-1);
  at::Tensor l = logits.to(at::kFloat).cpu() / o.temperature;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (o.top_k > 0 && o.top_k < l.size(-1)) {
    at::Tensor kth = std::get<0>(l.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);
    l = l.masked_fill(l.lt(kth), neg_inf);
  }
  if (o.top_p < 1.0) {
    // Keep the smallest set of most likely tokens whose probability reaches top_p (always at
    // least one): drop a token when the mass before it already reaches top_p.
    auto [sorted, idx] = l.sort(-1, /*descending=*/true);
    at::Tensor p = at::softmax(sorted, -1);
    at::Tensor before = p.cumsum(-1) - p;
    at::Tensor drop = before.ge(o.top_p);
    drop.narrow(-1, 0, 1).fill_(false);
    l = l.scatter(-1, idx, sorted.masked_fill(drop, neg_inf));
  }
  at::Tensor probs = at::softmax(l, -1);
  return at::multinomial(probs, 1, /*replacement=*/false, gen).squeeze(-1).to(logits.device());
}

bool ends_with(const std::vector<std::int64_t>& seq, const std::vector<std::int64_t>& tail) {
  return !tail.empty() && seq.size() >= tail.size() &&
         std::equal(tail.rbegin(), tail.rend(), seq.rbegin());
}

}  // namespace

GenerateResult generate(CausalLM& model, const at::Tensor& input_ids,
                        const at::Tensor& attention_mask, const GenerateOptions& o) {
  torch::NoGradGuard no_grad;
  const ModelConfig& cfg = model.config();
  LETHE_CHECK(input_ids.dim() == 2 && input_ids.size(0) > 0 && input_ids.size(1) > 0,
              "generate needs (batch, prompt tokens) ids, got ", input_ids.sizes());
  LETHE_CHECK(o.max_new_tokens >= 0, "max_new_tokens must be >= 0, got ", o.max_new_tokens);
  LETHE_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, "temperature must be a number >= 0, got ",
              o.temperature);
  LETHE_CHECK(o.top_p > 0.0 && o.top_p <= 1.0, "top_p must be in (0, 1], got ", o.top_p);
  LETHE_CHECK(o.top_k >= 0, "top_k must be >= 0, got ", o.top_k);
  LETHE_CHECK(o.stop_strings.empty() || o.detokenize, "stop strings need a detokenizer");
  const std::int64_t b = input_ids.size(0), p = input_ids.size(1);
  const auto device = model.head_weight().device();
  // Learned positions end there; rotary ones run on but were never trained past it, so every
  // family is held to its context (docs/reliability.md).
  LETHE_CHECK(p + o.max_new_tokens <= cfg.max_position_embeddings, "prompt (", p, " tokens) + max_new_tokens (",
              o.max_new_tokens, ") exceeds this model's ", cfg.max_position_embeddings,
              " positions (max_position_embeddings); ask for at most ",
              std::max<std::int64_t>(cfg.max_position_embeddings - p, 0), " new tokens");

  at::Tensor ids = input_ids.to(device, at::kLong);
  at::Tensor mask = attention_mask.defined() ? attention_mask.to(device, at::kLong)
                                             : at::ones({b, p}, ids.options());
  LETHE_CHECK(mask.sizes() == ids.sizes(), "attention_mask ", mask.sizes(),
              " must match input_ids ", ids.sizes());
  LETHE_CHECK(mask.select(1, p - 1).ne(0).all().item<bool>(),
              "prompts must be left-padded: every row's last position must be a real token");

  std::vector<std::int64_t> eos = o.eos_token_ids.empty() ? cfg.eos_token_ids : o.eos_token_ids;
  if (!o.stop_at_eos) eos.clear();
  std::int64_t pad = o.pad_token_id;
  if (pad < 0) pad = cfg.pad_token_id.value_or(eos.empty() ? 0 : eos[0]);

  GenerateResult res;
  res.tokens.assign(b, {});
  res.stop_reasons.assign(b, StopReason::kMaxTokens);
  if (o.keep_token_logprobs) res.token_logprobs.assign(b, {});
  if (o.max_new_tokens == 0) return res;

  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  KVCache cache(cfg.num_layers, p + o.max_new_tokens);
  ForwardOptions fo;
  fo.cache = &cache;
  fo.hooks = o.hooks;
  fo.logits = LogitsMode::kLast;
  fo.attention_mask = mask;
  fo.position_ids = positions_from_mask(mask);
  at::Tensor next_pos = fo.position_ids.select(1, p - 1).unsqueeze(1) + 1;  // (B, 1)
  at::Tensor logits = model.forward(ids, fo).logits.select(1, 0);          // (B, V)

  std::vector<bool> done(b, false);
  std::int64_t remaining = b;
  std::vector<at::Tensor> kept;
  for (std::int64_t step = 0; step < o.max_new_tokens; ++step) {
    at::Tensor next = choose(logits, o, gen);  // (B)
    if (o.keep_step_logits) kept.push_back(logits.to(at::kFloat).cpu());
    at::Tensor next_cpu = next.cpu();
    const auto* nt = next_cpu.data_ptr<std::int64_t>();
    at::Tensor chosen_lp;
    if (o.keep_token_logprobs) {
      const at::Tensor lf = logits.to(at::kFloat);
      chosen_lp = (lf.gather(1, next.view({b, 1})).squeeze(1) - lf.logsumexp(1)).cpu().contiguous();
    }
    for (std::int64_t r = 0; r < b; ++r) {
      if (done[r]) continue;
      const std::int64_t tok = nt[r];
      if (o.keep_token_logprobs) res.token_logprobs[r].push_back(chosen_lp.data_ptr<float>()[r]);
      if (std::find(eos.begin(), eos.end(), tok) != eos.end()) {
        res.stop_reasons[r] = StopReason::kEos;
      } else {
        auto& row = res.tokens[r];
        row.push_back(tok);
        bool stop = std::any_of(o.stop_sequences.begin(), o.stop_sequences.end(),
                                [&](const auto& s) { return ends_with(row, s); });
        if (stop) {
          res.stop_reasons[r] = StopReason::kStopSequence;
        } else if (!o.stop_strings.empty()) {
          const std::string text = o.detokenize(row);
          for (const auto& s : o.stop_strings) {
            if (!s.empty() && text.find(s) != std::string::npos) {
              res.stop_reasons[r] = StopReason::kStopString;
              stop = true;
              break;
            }
          }
        }
        if (!stop) continue;
      }
      done[r] = true;
      --remaining;
      if (o.on_row_done) o.on_row_done(r, res.tokens[r], res.stop_reasons[r]);
    }
    if (remaining == 0 || step + 1 == o.max_new_tokens) break;

    // Finished rows keep decoding a pad token so the batch stays rectangular.
    at::Tensor feed = next;
    if (remaining < b) {
      at::Tensor finished = at::empty({b}, at::kBool);
      for (std::int64_t r = 0; r < b; ++r) finished.data_ptr<bool>()[r] = done[r];
      feed = next.masked_fill(finished.to(device), pad);
    }
    mask = at::cat({mask, at::ones({b, 1}, mask.options())}, 1);
    fo.attention_mask = mask;
    fo.position_ids = next_pos;
    logits = model.forward(feed.view({b, 1}), fo).logits.select(1, 0);
    next_pos = next_pos + 1;
  }
  if (o.on_row_done) {
    for (std::int64_t r = 0; r < b; ++r) {
      if (!done[r]) o.on_row_done(r, res.tokens[r], res.stop_reasons[r]);  // ran to max_new_tokens
    }
  }
  if (o.keep_step_logits) res.step_logits = at::stack(kept, 1);
  return res;
}

GenerateResult generate(CausalLM& model, const std::vector<std::vector<std::int64_t>>& prompts,
                        const GenerateOptions& o) {
  LETHE_CHECK(!prompts.empty(), "generate: no prompts");
  std::size_t p = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    LETHE_CHECK(!prompts[i].empty(), "generate: prompt ", i, " is empty (give at least one "
                "token, e.g. the BOS id)");
    p = std::max(p, prompts[i].size());
  }
  const auto b = static_cast<std::int64_t>(prompts.size());
  const auto pl = static_cast<std::int64_t>(p);
  at::Tensor ids = at::zeros({b, pl}, at::kLong);
  at::Tensor mask = at::zeros({b, pl}, at::kLong);
  for (std::int64_t r = 0; r < b; ++r) {
    const auto& s = prompts[r];
    const std::int64_t off = pl - static_cast<std::int64_t>(s.size());
    std::copy(s.begin(), s.end(), ids.data_ptr<std::int64_t>() + r * pl + off);
    std::fill_n(mask.data_ptr<std::int64_t>() + r * pl + off, s.size(), 1);
  }
  return generate(model, ids, mask, o);
}

}  // namespace lethe::model

#include "lethe/audit/exposure.h"

#include <map>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <set>

#include "audit/audits.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/data/dataset.h"
#include "lethe/eval/engine.h"
#include "lethe/model/kv_cache.h"

namespace lethe::audit {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr const char* kSlot = "{secret}";

// ln Φ(x), with the asymptotic series where erfc underflows.
double log_norm_cdf(double x) {
  if (x > -30) return std::log(0.5 * std::erfc(-x / std::sqrt(2.0)));
  const double x2 = x * x;
  return -0.5 * x2 - std::log(-x) - 0.5 * std::log(2 * M_PI) + std::log1p(-1 / x2 + 3 / (x2 * x2));
}

std::vector<double> score_with_prefix_cache(model::CausalLM& model, const text::Tokenizer& tok, const Canary& c,
                                            std::uint64_t n, const std::function<std::string(std::uint64_t)>& candidate,
                                            const ExposureOptions& o);

// The summed NLL (nats) of each candidate's slot and suffix, scored in chunks so memory stays
// flat over a million candidates. `candidate(i)` gives the i-th of `n`.
std::vector<double> score_candidates(model::CausalLM& model, const text::Tokenizer& tok, const Canary& c,
                                     std::uint64_t n, const std::function<std::string(std::uint64_t)>& candidate,
                                     const ExposureOptions& o) {
  if (o.reuse_prefix) return score_with_prefix_cache(model, tok, c, n, candidate, o);
  eval::EngineOptions eo;
  eo.batch_size = o.batch_size;
  eo.progress = false;
  const std::int64_t pad = text::padding_id(tok);
  const std::string prefix = c.prefix(), suffix = c.suffix();
  std::vector<double> nlls;
  nlls.reserve(n);
  constexpr std::uint64_t kChunk = 4096;  // candidates tokenized at a time
  for (std::uint64_t lo = 0; lo < n; lo += kChunk) {
    const std::uint64_t hi = std::min(n, lo + kChunk);
    std::vector<data::Example> ex;
    for (std::uint64_t i = lo; i < hi; ++i) {
      ex.push_back(data::scoring_example(tok, prefix, candidate(i) + suffix, o.max_length));
    }
    for (const auto& s : eval::score_examples(model, ex, pad, /*extras=*/false, eo, "exposure")) {
      double v = 0;
      for (float lp : s.logprobs) v -= lp;
      nlls.push_back(v);
    }
    if (o.progress && n > kChunk) log_info("exposure: ", hi, " of ", n, " candidates scored");
  }
  return nlls;
}

// The same NLLs with the canary's prefix computed once: its keys and values are cached for a
// batch of rows, and every batch of candidates runs only its own tokens after them (the cache
// truncated back to the prefix between batches). Candidates whose tokenization shares fewer
// prefix tokens (a token merging across the slot) get a prefix cache of their own length.
std::vector<double> score_with_prefix_cache(model::CausalLM& model, const text::Tokenizer& tok, const Canary& c,
                                            std::uint64_t n, const std::function<std::string(std::uint64_t)>& candidate,
                                            const ExposureOptions& o) {
  torch::NoGradGuard no_grad;
  const std::string prefix = c.prefix(), suffix = c.suffix();
  const auto pids = tok.encode(prefix, true);
  const auto device = model.head_weight().device();
  const std::int64_t b = o.batch_size;
  const std::int64_t pad = text::padding_id(tok);
  struct Prefix {
    std::unique_ptr<model::KVCache> cache;
    at::Tensor last;  // (V) float log-probs after the prefix
  };
  using Tokens = std::vector<std::int64_t>;
  std::map<Tokens, Prefix> prefixes;  // by the prefix tokens shared
  auto prefix_for = [&](const Tokens& shared) -> Prefix& {
    const std::size_t np = shared.size();
    auto it = prefixes.find(shared);
    if (it != prefixes.end()) return it->second;
    Prefix p;
    p.cache = std::make_unique<model::KVCache>(model.config().num_layers, static_cast<std::int64_t>(np) + 64);
    at::Tensor ids = at::empty({b, static_cast<std::int64_t>(np)}, at::kLong);
    for (std::int64_t r = 0; r < b; ++r) std::copy(shared.begin(), shared.end(), ids.data_ptr<std::int64_t>() + r * np);
    model::ForwardOptions fo;
    fo.cache = p.cache.get();
    fo.logits = model::LogitsMode::kLast;
    p.last = model.forward(ids.to(device), fo).logits.select(1, 0)[0].to(at::kFloat).log_softmax(-1).cpu().contiguous();
    return prefixes.emplace(shared, std::move(p)).first->second;
  };
  std::vector<double> nlls(n, 0.0);
  constexpr std::uint64_t kChunk = 4096;
  for (std::uint64_t lo = 0; lo < n; lo += kChunk) {
    const std::uint64_t hi = std::min(n, lo + kChunk);
    std::map<Tokens, std::vector<std::uint64_t>> groups;  // shared prefix tokens -> candidates
    std::vector<Tokens> full(hi - lo);
    for (std::uint64_t i = lo; i < hi; ++i) {
      auto& f = full[i - lo];
      f = tok.encode(prefix + candidate(i) + suffix, true);
      std::size_t np = 0;
      while (np < pids.size() && np < f.size() && pids[np] == f[np]) ++np;
      np = std::max<std::size_t>(np, 1);  // the first token has no prediction (scoring_example's rule)
      LETHE_CHECK(np < f.size(), "exposure: '", c.text, "' filled with '", candidate(i), "' leaves no token to score");
      groups[Tokens(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(np))].push_back(i);
    }
    for (const auto& [shared, members] : groups) {
      const std::size_t np = shared.size();
      Prefix& p = prefix_for(shared);
      for (std::size_t g = 0; g < members.size(); g += static_cast<std::size_t>(b)) {
        const std::size_t rows = std::min(members.size() - g, static_cast<std::size_t>(b));
        std::int64_t t = 1;
        for (std::size_t r = 0; r < rows; ++r) t = std::max<std::int64_t>(t, full[members[g + r] - lo].size() - np);
        // (b, t) the candidates' own tokens, right-padded; (b, t) the token each position predicts.
        at::Tensor ids = at::full({b, t}, pad, at::kLong), next = at::zeros({b, t}, at::kLong);
        at::Tensor mask = at::zeros({b, static_cast<std::int64_t>(np) + t}, at::kLong);
        mask.narrow(1, 0, static_cast<std::int64_t>(np)).fill_(1);
        auto* idp = ids.data_ptr<std::int64_t>();
        auto* nxp = next.data_ptr<std::int64_t>();
        auto* mkp = mask.data_ptr<std::int64_t>();
        const std::int64_t mw = static_cast<std::int64_t>(np) + t;
        for (std::size_t r = 0; r < rows; ++r) {
          const auto& f = full[members[g + r] - lo];
          const auto row = static_cast<std::int64_t>(r);
          for (std::size_t j = np; j < f.size(); ++j) {
            const auto k = static_cast<std::int64_t>(j - np);
            idp[row * t + k] = f[j];
            mkp[row * mw + static_cast<std::int64_t>(j)] = 1;
            if (j + 1 < f.size()) nxp[row * t + k] = f[j + 1];
          }
        }
        model::ForwardOptions fo;
        fo.cache = p.cache.get();
        fo.attention_mask = mask.to(device);
        const at::Tensor logits = model.forward(ids.to(device), fo).logits.to(at::kFloat);  // (b, t, V)
        p.cache->truncate(static_cast<std::int64_t>(np));
        const at::Tensor lp =
            (logits.gather(2, next.to(device).unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)).cpu().contiguous();
        const auto acc = lp.accessor<float, 2>();
        const auto last = p.last.accessor<float, 1>();
        for (std::size_t r = 0; r < rows; ++r) {
          const auto& f = full[members[g + r] - lo];
          double v = -last[f[np]];
          for (std::size_t j = np; j + 1 < f.size(); ++j) v -= acc[static_cast<std::int64_t>(r)][static_cast<std::int64_t>(j - np)];
          nlls[members[g + r]] = v;
        }
      }
    }
    if (o.progress && n > kChunk) log_info("exposure: ", hi, " of ", n, " candidates scored");
  }
  return nlls;
}

}  // namespace

CandidateSpace CandidateSpace::parse(const Json& j, const std::string& where) {
  CandidateSpace s;
  if (j.is_array()) {
    std::set<std::string> seen;
    for (const auto& c : j) {
      LETHE_CHECK(c.is_string(), where, ": \"space\" as a list holds strings only, got ", c.dump());
      LETHE_CHECK(seen.insert(c.get<std::string>()).second, where, ": \"space\" lists '", c.get<std::string>(),
                  "' twice");
      s.list_.push_back(c);
    }
    LETHE_CHECK(s.list_.size() >= 2, where, ": \"space\" as a list needs at least two candidates");
    return s;
  }
  LETHE_CHECK(j.is_string(), where, ": \"space\" must be digits:N, letters:N, hex:N or a list of strings, got ",
              j.dump());
  const std::string v = j;
  const auto colon = v.find(':');
  const std::string kind = v.substr(0, colon);
  if (kind == "digits") s.alphabet_ = "0123456789";
  if (kind == "letters") s.alphabet_ = "abcdefghijklmnopqrstuvwxyz";
  if (kind == "hex") s.alphabet_ = "0123456789abcdef";
  int n = 0;
  std::size_t used = 0;
  if (colon != std::string::npos) {
    try {
      n = std::stoi(v.substr(colon + 1), &used);
    } catch (const std::exception&) {
      n = 0;
    }
  }
  LETHE_CHECK(!s.alphabet_.empty() && colon != std::string::npos && used == v.size() - colon - 1 && n >= 1 && n <= 64,
              where, ": \"space\" '", v, "' is not digits:N, letters:N or hex:N with N from 1 to 64");
  s.length_ = n;
  return s;
}

double CandidateSpace::log2_size() const {
  if (!list_.empty()) return std::log2(static_cast<double>(list_.size()));
  return length_ * std::log2(static_cast<double>(alphabet_.size()));
}

std::uint64_t CandidateSpace::size() const {
  if (!list_.empty()) return list_.size();
  if (log2_size() >= 63) return 0;
  std::uint64_t n = 1;
  for (int i = 0; i < length_; ++i) n *= alphabet_.size();
  return n;
}

std::string CandidateSpace::at(std::uint64_t i) const {
  if (!list_.empty()) return list_.at(i);
  std::string s(static_cast<std::size_t>(length_), alphabet_[0]);
  for (int k = length_ - 1; k >= 0; --k) {
    s[static_cast<std::size_t>(k)] = alphabet_[i % alphabet_.size()];
    i /= alphabet_.size();
  }
  return s;
}

bool CandidateSpace::contains(const std::string& s) const {
  if (!list_.empty()) return std::find(list_.begin(), list_.end(), s) != list_.end();
  return static_cast<int>(s.size()) == length_ &&
         std::all_of(s.begin(), s.end(), [&](char c) { return alphabet_.find(c) != std::string::npos; });
}

std::string CandidateSpace::draw(std::mt19937_64& rng) const {
  if (!list_.empty()) return list_[std::uniform_int_distribution<std::size_t>(0, list_.size() - 1)(rng)];
  std::uniform_int_distribution<std::size_t> pick(0, alphabet_.size() - 1);
  std::string s(static_cast<std::size_t>(length_), ' ');
  for (char& ch : s) ch = alphabet_[pick(rng)];
  return s;
}

std::string CandidateSpace::describe() const {
  if (!list_.empty()) return "list:" + std::to_string(list_.size());
  const std::string kind = alphabet_.size() == 10 ? "digits" : alphabet_.size() == 16 ? "hex" : "letters";
  return kind + ":" + std::to_string(length_);
}

std::string Canary::prefix() const { return text.substr(0, text.find(kSlot)); }
std::string Canary::suffix() const { return text.substr(text.find(kSlot) + std::string(kSlot).size()); }

std::vector<Canary> read_canaries(const fs::path& jsonl) {
  std::vector<Canary> out;
  for_each_record(jsonl, [&](const std::string& where, const Json& r) {
    for (const char* k : {"text", "secret"}) {
      LETHE_CHECK(r.is_object() && r.contains(k) && r[k].is_string(), where, ": a canary needs a string \"", k,
                  "\" ({\"text\": \"... {secret} ...\", \"secret\": \"...\", \"space\": \"digits:N\"})");
    }
    LETHE_CHECK(r.contains("space"), where, ": a canary needs \"space\" (digits:N, letters:N, hex:N or a list)");
    Canary c;
    c.text = r["text"];
    c.secret = r["secret"];
    const auto first = c.text.find(kSlot);
    LETHE_CHECK(first != std::string::npos && c.text.find(kSlot, first + 1) == std::string::npos, where,
                ": \"text\" must hold {secret} exactly once");
    c.space = CandidateSpace::parse(r["space"], where);
    LETHE_CHECK(c.space.contains(c.secret), where, ": the secret '", c.secret, "' is not in its space ",
                c.space.describe());
    c.repetitions = repetitions_of(r, where);
    if (r.contains("group")) {
      LETHE_CHECK(r["group"].is_string() && !r["group"].get<std::string>().empty(), where,
                  ": \"group\" must be a non-empty string");
      c.group = r["group"];
    }
    out.push_back(std::move(c));
  });
  LETHE_CHECK(!out.empty(), jsonl.string(), ": no canaries");
  return out;
}

Exposure exposure_from_nlls(double secret, const std::vector<double>& candidates) {
  LETHE_CHECK(!candidates.empty(), "exposure: no candidates");
  Exposure e;
  e.candidates = candidates.size();
  // Ties count against the secret (it is among the candidates, so rank >= 1).
  e.rank = static_cast<std::uint64_t>(
      std::max<std::ptrdiff_t>(1, std::count_if(candidates.begin(), candidates.end(), [&](double c) { return c <= secret; })));
  e.secret_nll = secret;
  e.exposure = std::log2(static_cast<double>(e.candidates)) - std::log2(static_cast<double>(e.rank));
  return e;
}

double skew_normal_log_cdf(double z, double alpha) {
  LETHE_CHECK(std::isfinite(z) && std::isfinite(alpha), "skew_normal_log_cdf: z and alpha must be finite");
  if (z > 40) return 0;
  // The density 2 φ(t) Φ(α t) below min(z, 0) − 12 holds under 2 Φ(−12) ≈ 4e-33 of the mass, and
  // in the left tail it falls off away from z, so [min(z, 0) − 12, z] carries F to double precision.
  const double lo = std::min(z, 0.0) - 12;
  constexpr int kSteps = 4000;  // Simpson intervals (even)
  const double h = (z - lo) / kSteps;
  std::vector<double> g(kSteps + 1);
  double top = -INFINITY;
  for (int i = 0; i <= kSteps; ++i) {
    const double t = lo + h * i;
    g[i] = std::log(2.0) - 0.5 * t * t - 0.5 * std::log(2 * M_PI) + log_norm_cdf(alpha * t);
    top = std::max(top, g[i]);
  }
  double sum = 0;
  for (int i = 0; i <= kSteps; ++i) {
    const double w = (i == 0 || i == kSteps) ? 1 : (i % 2 ? 4 : 2);
    sum += w * std::exp(g[i] - top);
  }
  return std::min(0.0, top + std::log(sum * h / 3));
}

SkewNormal fit_skew_normal(const std::vector<double>& x) {
  LETHE_CHECK(x.size() >= 3, "fit_skew_normal: needs at least 3 values, got ", x.size());
  const double n = static_cast<double>(x.size());
  double mean = 0;
  for (double v : x) mean += v;
  mean /= n;
  double m2 = 0, m3 = 0;
  for (double v : x) {
    m2 += (v - mean) * (v - mean);
    m3 += (v - mean) * (v - mean) * (v - mean);
  }
  m2 /= n;
  m3 /= n;
  LETHE_CHECK(m2 > 0, "fit_skew_normal: all ", x.size(), " values are equal (the model cannot tell the candidates apart)");
  const double skew = std::clamp(m3 / std::pow(m2, 1.5), -0.99, 0.99);
  // Invert the skewness γ1 = (4 − π)/2 · (δ√(2/π))³ / (1 − 2δ²/π)^{3/2} for δ = α / √(1 + α²).
  const double g = std::pow(std::fabs(skew), 2.0 / 3.0);
  const double delta =
      std::copysign(std::sqrt(M_PI / 2 * g / (g + std::pow((4 - M_PI) / 2, 2.0 / 3.0))), skew);
  SkewNormal f;
  f.alpha = delta / std::sqrt(1 - delta * delta);
  f.omega = std::sqrt(m2 / (1 - 2 * delta * delta / M_PI));
  f.xi = mean - f.omega * delta * std::sqrt(2 / M_PI);
  return f;
}

Exposure exposure_from_samples(double secret, const std::vector<double>& sampled, double space_log2) {
  Exposure e;
  e.method = "skew-normal";
  e.fit = fit_skew_normal(sampled);
  e.candidates = sampled.size() + 1;  // the secret among the sampled
  e.rank = 1 + static_cast<std::uint64_t>(std::count_if(sampled.begin(), sampled.end(), [&](double c) { return c <= secret; }));
  e.secret_nll = secret;
  e.space_log2 = space_log2;
  const double log_f = skew_normal_log_cdf((secret - e.fit.xi) / e.fit.omega, e.fit.alpha);
  e.exposure = std::clamp(-log_f / std::log(2.0), 0.0, space_log2);
  return e;
}

Exposure canary_exposure(model::CausalLM& model, const text::Tokenizer& tok, const Canary& c,
                         const ExposureOptions& o) {
  const auto slot = c.text.find(kSlot);
  LETHE_CHECK(slot != std::string::npos && c.text.find(kSlot, slot + 1) == std::string::npos, "exposure: '", c.text,
              "' must hold {secret} exactly once");
  LETHE_CHECK(c.space.contains(c.secret), "exposure: the secret '", c.secret, "' is not in its space ",
              c.space.describe());
  const std::uint64_t n = c.space.size();
  Exposure e;
  if (n > 0 && n <= o.max_exact) {
    // The secret's NLL from its own place in the batches, so it ties with itself bit for bit.
    std::uint64_t at = 0;
    while (c.space.at(at) != c.secret) ++at;
    const auto nlls = score_candidates(model, tok, c, n, [&](std::uint64_t i) { return c.space.at(i); }, o);
    e = exposure_from_nlls(nlls[at], nlls);
  } else {
    const double secret = score_candidates(model, tok, c, 1, [&](std::uint64_t) { return c.secret; }, o).front();
    LETHE_CHECK(o.samples >= 100, "exposure: the estimate for ", c.space.describe(), " needs at least 100 sampled candidates, got ",
                o.samples);
    // The secret itself is redrawn: the sample stands for the other candidates, and a copy of
    // the secret would tie with it (rank counts the sampled candidates at least as likely).
    std::mt19937_64 rng(o.seed);
    std::vector<std::string> drawn(o.samples);
    for (auto& d : drawn) {
      for (int tries = 0; (d = c.space.draw(rng)) == c.secret; ++tries) {
        LETHE_CHECK(tries < 1000, "exposure: the space ", c.space.describe(), " holds little but the secret");
      }
    }
    e = exposure_from_samples(secret, score_candidates(model, tok, c, drawn.size(), [&](std::uint64_t i) { return drawn[i]; }, o),
                              c.space.log2_size());
  }
  e.space_log2 = c.space.log2_size();
  e.text = c.text;
  e.secret = c.secret;
  e.repetitions = c.repetitions;
  return e;
}

namespace {

Json run_exposure(model::CausalLM& model, const text::Tokenizer& tok, const AuditOptions& o,
                  const std::vector<Canary>& canaries) {
  ExposureOptions eo = o.exposure;
  eo.progress = o.progress;
  eo.seed = o.seed;
  Json items = Json::array();
  struct Tally {
    std::vector<double> all;
    std::map<std::int64_t, std::vector<double>> by_repetitions;
    std::size_t top = 0;
  };
  Tally total;
  std::map<std::string, Tally> groups;
  for (const Canary& c : canaries) {
    const Exposure e = canary_exposure(model, tok, c, eo);
    Json j = {{"text", e.text},         {"secret", e.secret},   {"space", c.space.describe()},
              {"method", e.method},     {"rank", e.rank},       {"candidates", e.candidates},
              {"exposure", e.exposure}, {"max_exposure", e.space_log2}, {"secret_nll", e.secret_nll}};
    if (e.method == "skew-normal") j["fit"] = {{"xi", e.fit.xi}, {"omega", e.fit.omega}, {"alpha", e.fit.alpha}};
    if (c.repetitions > 0) j["repetitions"] = c.repetitions;
    if (!c.group.empty()) j["group"] = c.group;
    items.push_back(j);
    for (Tally* t : {&total, c.group.empty() ? nullptr : &groups[c.group]}) {
      if (!t) continue;
      t->all.push_back(e.exposure);
      if (c.repetitions > 0) t->by_repetitions[c.repetitions].push_back(e.exposure);
      if (e.rank == 1) ++t->top;
    }
  }
  auto summary = [&](const Tally& t) {
    Json agg = {{"mean_exposure", mean_with_ci(t.all, o.seed)}, {"ranked_first", t.top}, {"canaries", t.all.size()}};
    if (!t.by_repetitions.empty()) agg["by_repetitions"] = by_repetitions_json(t.by_repetitions, o.seed);
    return agg;
  };
  Json agg = summary(total);
  for (const auto& [g, t] : groups) agg["groups"][g] = summary(t);
  return {{"items", items}, {"aggregate", agg}};
}

AuditRun prepare_exposure(const AuditOptions& o) {
  auto canaries = std::make_shared<const std::vector<Canary>>(read_canaries(o.canaries));
  return [o, canaries](model::CausalLM& m, const text::Tokenizer& t) { return run_exposure(m, t, o, *canaries); };
}

}  // namespace

const Audit& exposure_audit() {
  static const Audit a{"exposure", "canary exposure (The Secret Sharer): each secret's rank among its candidates", "--canaries",
                       &prepare_exposure};
  return a;
}

}  // namespace lethe::audit

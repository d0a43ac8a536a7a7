#include "lethe/audit/ghost.h"

#include <algorithm>
#include <map>
#include <cmath>
#include <random>
#include <set>

#include "audit/audits.h"
#include "lethe/audit/extract.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/data/dataset.h"
#include "lethe/eval/engine.h"
#include "lethe/eval/stats.h"

namespace lethe::audit {
namespace {

using Json = nlohmann::json;
constexpr const char* kWords = "{words}";

std::string join(const std::vector<std::string>& w, std::size_t from, std::size_t to) {
  std::string s;
  for (std::size_t i = from; i < to; ++i) s += (i == from ? "" : " ") + w[i];
  return s;
}

}  // namespace

std::vector<GhostSentence> read_ghost_sentences(const std::filesystem::path& jsonl) {
  std::vector<GhostSentence> out;
  for_each_record(jsonl, [&](const std::string& where, const Json& r) {
    LETHE_CHECK(r.is_object() && r.contains("text") && r["text"].is_string(), where,
                ": a ghost sentence needs a string \"text\" ({\"text\": \"...\", \"template\": \"... {words} ...\", "
                "\"pool\": [...]})");
    GhostSentence g;
    g.text = r["text"];
    const std::string tmpl = r.value("template", std::string(kWords));
    const auto slot = tmpl.find(kWords);
    LETHE_CHECK(slot != std::string::npos && tmpl.find(kWords, slot + 1) == std::string::npos, where,
                ": \"template\" must hold {words} exactly once");
    g.before = tmpl.substr(0, slot);
    g.after = tmpl.substr(slot + std::string(kWords).size());
    LETHE_CHECK(g.text.size() >= g.before.size() + g.after.size() && g.text.compare(0, g.before.size(), g.before) == 0 &&
                    g.text.compare(g.text.size() - g.after.size(), g.after.size(), g.after) == 0,
                where, ": \"text\" does not follow its template '", tmpl, "'");
    g.words = split_words(g.text.substr(g.before.size(), g.text.size() - g.before.size() - g.after.size()));
    LETHE_CHECK(g.words.size() >= 2, where, ": a ghost sentence needs at least 2 random words in its {words} part, got ",
                g.words.size());
    if (r.contains("pool")) {
      LETHE_CHECK(r["pool"].is_array() && r["pool"].size() >= 2, where, ": \"pool\" must be a list of at least 2 words");
      for (const auto& w : r["pool"]) {
        LETHE_CHECK(w.is_string() && split_words(w.get<std::string>()).size() == 1, where,
                    ": \"pool\" holds single words, got ", w.dump());
        g.pool.push_back(w);
      }
    } else {
      LETHE_CHECK(std::set<std::string>(g.words.begin(), g.words.end()).size() >= 2, where,
                  ": without a \"pool\" the population shuffles the sentence's words, so it needs two different ones");
    }
    g.repetitions = repetitions_of(r, where);
    out.push_back(std::move(g));
  });
  LETHE_CHECK(!out.empty(), jsonl.string(), ": no ghost sentences");
  return out;
}

std::vector<std::string> ghost_population(const GhostSentence& g, std::int64_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  const std::string ghost = join(g.words, 0, g.words.size());
  for (std::int64_t tries = 0; static_cast<std::int64_t>(out.size()) < count; ++tries) {
    LETHE_CHECK(tries < 1000 * count, "ghost: cannot draw sentences other than '", g.text, "' from its pool");
    std::vector<std::string> w = g.words;
    if (g.pool.empty()) {
      std::shuffle(w.begin(), w.end(), rng);
    } else {
      std::uniform_int_distribution<std::size_t> pick(0, g.pool.size() - 1);
      for (auto& x : w) x = g.pool[pick(rng)];
    }
    const std::string s = join(w, 0, w.size());
    if (s != ghost) out.push_back(g.before + s + g.after);
  }
  return out;
}

std::vector<GhostResult> ghost_tests(model::CausalLM& model, const text::Tokenizer& tok,
                                     const std::vector<GhostSentence>& ghosts, const GhostOptions& o) {
  LETHE_CHECK(o.last_k >= 1 && o.population >= 1, "ghost: last k and the population must be >= 1");
  eval::EngineOptions eo;
  eo.batch_size = o.batch_size;
  eo.progress = o.progress;
  std::vector<GhostResult> out(ghosts.size());

  // (a) last-k-words: the sentence without its last k words, greedily continued.
  std::vector<std::vector<std::int64_t>> prompts;
  std::int64_t longest = 1;
  for (std::size_t i = 0; i < ghosts.size(); ++i) {
    const auto w = split_words(ghosts[i].text);
    const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(o.last_k), w.size() - 1);
    out[i].text = ghosts[i].text;
    out[i].repetitions = ghosts[i].repetitions;
    out[i].expected = join(w, w.size() - k, w.size());
    prompts.push_back(tok.encode(join(w, 0, w.size() - k), true));
    longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(tok.encode(" " + out[i].expected, false).size()));
  }
  const auto gens = eval::generate_texts(model, tok, prompts, longest + 2, {}, eo, "ghost: last words");
  for (std::size_t i = 0; i < ghosts.size(); ++i) {
    out[i].completion = gens[i].text;
    const auto want = split_words(out[i].expected), got = split_words(gens[i].text);
    out[i].completed = got.size() >= want.size() && std::equal(want.begin(), want.end(), got.begin());
  }

  // (b) perplexity against the population of the same template.
  std::vector<data::Example> ex;
  std::vector<std::size_t> owner;
  for (std::size_t i = 0; i < ghosts.size(); ++i) {
    ex.push_back(data::scoring_example(tok, "", ghosts[i].text, o.max_length));
    owner.push_back(i);
    for (const auto& s : ghost_population(ghosts[i], o.population, o.seed + i)) {
      ex.push_back(data::scoring_example(tok, "", s, o.max_length));
      owner.push_back(i);
    }
  }
  const auto scores = eval::score_examples(model, ex, text::padding_id(tok), false, eo, "ghost: perplexity");
  for (std::size_t j = 0; j < scores.size(); ++j) {
    const double ppl = std::exp(eval::avg_nll(scores[j]));
    GhostResult& r = out[owner[j]];
    if (j == 0 || owner[j - 1] != owner[j]) {
      r.perplexity = ppl;
    } else {
      r.population_perplexity.push_back(ppl);
    }
  }
  for (auto& r : out) {
    std::vector<double> neg;
    for (double p : r.population_perplexity) neg.push_back(-p);
    r.auc = eval::roc_auc(neg, {-r.perplexity});
  }
  return out;
}

namespace {

Json run_ghost(model::CausalLM& model, const text::Tokenizer& tok, const AuditOptions& o,
               const std::vector<GhostSentence>& ghosts) {
  GhostOptions go = o.ghost_options;
  go.progress = o.progress;
  go.seed = o.seed;
  const auto results = ghost_tests(model, tok, ghosts, go);
  Json items = Json::array();
  std::vector<double> completed, aucs, pos, neg;
  std::map<std::int64_t, std::vector<double>> completed_by, auc_by;
  for (const auto& r : results) {
    if (r.repetitions > 0) {
      completed_by[r.repetitions].push_back(r.completed ? 1.0 : 0.0);
      auc_by[r.repetitions].push_back(r.auc);
    }
    Json j = {{"text", r.text},           {"expected", r.expected},       {"completion", r.completion},
              {"completed", r.completed}, {"perplexity", r.perplexity},   {"auc", r.auc},
              {"population", r.population_perplexity.size()}};
    if (r.repetitions > 0) j["repetitions"] = r.repetitions;
    items.push_back(j);
    completed.push_back(r.completed ? 1.0 : 0.0);
    aucs.push_back(r.auc);
    pos.push_back(-r.perplexity);
    for (double p : r.population_perplexity) neg.push_back(-p);
  }
  // Pooled: every ghost against every population sentence, resampled within each class.
  const eval::Interval ci = eval::bootstrap_ci_groups(
      {pos.size(), neg.size()},
      [&](const std::vector<std::vector<std::size_t>>& d) {
        std::vector<double> p, n;
        for (auto i : d[0]) p.push_back(pos[i]);
        for (auto i : d[1]) n.push_back(neg[i]);
        return eval::roc_auc(n, p);
      },
      o.seed);
  Json agg = {{"completed", mean_with_ci(completed, o.seed)},
              {"auc", {{"value", eval::roc_auc(neg, pos)}, {"ci", {ci.lo, ci.hi}}, {"n", pos.size()}}},
              {"mean_sentence_auc", mean_with_ci(aucs, o.seed)},
              {"last_k", go.last_k},
              {"population", go.population}};
  if (!completed_by.empty()) {
    agg["by_repetitions"] = {{"completed", by_repetitions_json(completed_by, o.seed)},
                             {"auc", by_repetitions_json(auc_by, o.seed)}};
  }
  return {{"items", items}, {"aggregate", agg}};
}

AuditRun prepare_ghost(const AuditOptions& o) {
  auto ghosts = std::make_shared<const std::vector<GhostSentence>>(read_ghost_sentences(o.ghost));
  return [o, ghosts](model::CausalLM& m, const text::Tokenizer& t) { return run_ghost(m, t, o, *ghosts); };
}

}  // namespace

const Audit& ghost_audit() {
  static const Audit a{"ghost", "ghost sentences (Wang et al. 2024): last-k-words completion and perplexity AUC", "--ghost",
                       &prepare_ghost};
  return a;
}

}  // namespace lethe::audit

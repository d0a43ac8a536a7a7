// lethe audit: what does a model still leak? (docs/audits.md)
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <utility>
#include <vector>

#include "commands.h"
#include "lethe/audit/audit.h"
#include "lethe/core/error.h"

namespace lethe::cli {
namespace {

std::string value_text(const audit::Json& m) {
  if (m.is_object() && m.contains("value")) {
    std::ostringstream s;
    s << std::setprecision(4) << (m["value"].is_number() ? m["value"].get<double>() : NAN);
    if (m.contains("ci") && m["ci"].is_array()) s << " [" << m["ci"][0].get<double>() << ", " << m["ci"][1].get<double>() << "]";
    return s.str();
  }
  return m.dump();
}

// "  exposure by repetitions: 1: 0.3, 4: 2.1 bits" from an aggregate's by_repetitions (or its
// `key`), nothing when it has none.
void print_by_repetitions(const std::string& label, const audit::Json& agg, const std::string& unit,
                          const std::string& key = "by_repetitions") {
  if (!agg.contains(key)) return;
  std::vector<std::pair<long long, double>> points;
  for (const auto& [r, v] : agg[key].items()) {
    if (v["value"].is_number()) points.emplace_back(std::stoll(r), v["value"].get<double>());
  }
  std::sort(points.begin(), points.end());
  std::cout << label << " by repetitions:";
  for (std::size_t i = 0; i < points.size(); ++i) {
    std::cout << (i ? ", " : " ") << points[i].first << ": " << std::setprecision(3) << points[i].second;
  }
  std::cout << " " << unit << "\n";
}

void print_result(const audit::Json& r) {
  for (const auto& m : r["models"]) {
    std::cout << m["role"].get<std::string>() << " (" << m["path"].get<std::string>() << ")\n";
    for (const auto& a : m["audits"]) {
      const std::string name = a["audit"];
      const auto& g = a["aggregate"];
      if (name == "exposure") {
        std::cout << "  exposure: mean " << value_text(g["mean_exposure"]) << " bits, " << g["ranked_first"] << " of "
                  << g["canaries"] << " canaries ranked first\n";
        if (g.contains("groups")) {
          for (const auto& [grp, v] : g["groups"].items()) print_by_repetitions("  exposure (" + grp + ")", v, "bits");
        } else {
          print_by_repetitions("  exposure", g, "bits");
        }
      } else if (name == "extract") {
        std::cout << "  extract: " << g["memorized"] << " of " << g["samples"] << " samples memorised;";
        for (const auto& [sig, v] : g["precision_at_top"].items()) std::cout << " precision@" << g["top"] << " " << sig << " " << value_text(v);
        std::cout << "\n";
        print_by_repetitions("  extract", g, "of documents extracted");
      } else if (name == "forcing") {
        std::cout << "  forcing: " << g["prompts"] << " prompts, " << std::setprecision(4)
                  << g["tokens_per_second"].get<double>() << " tokens/s";
        if (!a["items"].empty()) {
          std::cout << "; most certain: '" << a["items"][0]["token_text"].get<std::string>() << "' -> '"
                    << a["items"][0]["text"].get<std::string>() << "' (mean log p "
                    << a["items"][0]["mean_logprob"].get<double>() << ")";
        }
        std::cout << "\n";
      } else if (name == "ghost") {
        std::cout << "  ghost: completed " << value_text(g["completed"]) << ", perplexity AUC " << value_text(g["auc"]) << "\n";
        if (g.contains("by_repetitions")) print_by_repetitions("  ghost", g["by_repetitions"], "completed", "completed");
      }
    }
  }
}

}  // namespace

void add_audit(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("audit", "Audit what a model memorised: canary exposure, extraction, token forcing, ghost sentences");
  struct Opts {
    audit::AuditOptions a;
    std::string audits;
    std::vector<std::string> compare;
    bool list = false, no_progress = false;
  };
  auto o = std::make_shared<Opts>();
  auto& a = o->a;
  cmd->add_option("--model", a.model, "the model folder to audit (required)");
  cmd->add_option("--target", a.target, "also audit this model (before unlearning), the same way");
  cmd->add_option("--oracle", a.oracle, "also audit this model (retrained without the forget set), the same way");
  cmd->add_option("--compare", o->compare,
                  "also audit the model in DIR, the same way, under NAME (NAME=DIR; repeatable): the standard and "
                  "perturbed models of an insertion study");
  cmd->add_option("--model-name", a.model_role, "the audited model's name in AUDIT.json and the report (default model)");
  cmd->add_option("--out", a.out, "output folder for AUDIT.json and audit.html (required; new or empty unless --force)");
  cmd->add_option("--audits", o->audits,
                  "comma-separated audits (default: every audit whose input is given; forcing always; see --list)");
  cmd->add_option("--canaries", a.canaries, "exposure: canaries JSONL, {\"text\": \"... {secret} ...\", \"secret\", \"space\"} a line");
  cmd->add_option("--ghost", a.ghost, "ghost: ghost sentences JSONL, {\"text\"[, \"template\", \"pool\"]} a line");
  cmd->add_option("--corpus", a.corpus, "extract: the training corpus JSONL, {\"text\"} a line");
  cmd->add_option("--reference", a.reference, "extract: a reference model folder (adds the reference-ratio signal)");
  cmd->add_option("--prefixes", a.prefixes, "extract: prompts JSONL, {\"text\"} a line (default: BOS alone)");
  cmd->add_option("--tokenizer", a.tokenizer, "tokenizer (default: each model folder's)");
  cmd->add_option("--max-exact", a.exposure.max_exact, "exposure: rank exactly up to this many candidates (default 1000000)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--exposure-samples", a.exposure.samples,
                  "exposure: candidates sampled for the skew-normal estimate of larger spaces (default 10000)")
      ->check(CLI::Range(100, 100000000));
  cmd->add_option("--samples", a.extract.samples, "extract: continuations sampled (default 500)")->check(CLI::PositiveNumber);
  cmd->add_option("--sample-tokens", a.extract.new_tokens, "extract: tokens per continuation (default 64)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--top-k", a.extract.top_k, "extract: sampling from the k most likely tokens (default 40)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--ngram", a.extract.ngram, "extract: consecutive words a corpus match needs (default 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--top", a.extract.top, "extract: K of precision@K (default 100)")->check(CLI::PositiveNumber);
  cmd->add_option("--forcing-tokens", a.forcing.new_tokens, "forcing: tokens decoded per forcing prompt (default 16)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--forcing-vocab", a.forcing.vocab_limit, "forcing: only the first N token ids (default: all)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--forcing-top", a.forcing_top, "forcing: continuations listed per model (default 20)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--last-k", a.ghost_options.last_k, "ghost: words the last-k-words test completes (default 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--population", a.ghost_options.population, "ghost: random sentences per ghost sentence (default 100)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a.exposure.batch_size, "sequences per scoring batch of exposure (default 64); extraction and the ghost tests use this many, at most 64")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.seed, "sampling and bootstrap seed (default 0)");
  cmd->add_flag("--force", a.force, "replace an existing non-empty --out folder as a whole");
  cmd->add_flag("--no-progress", o->no_progress, "no progress bars");
  cmd->add_flag("--list", o->list, "list the audits and exit");
  cmd->callback([o, &global] {
    if (o->list) {
      for (const audit::Audit* x : audit::all_audits()) {
        std::cout << x->name << "  " << x->description << (x->needs.empty() ? "" : " (needs " + x->needs + ")") << "\n";
      }
      return;
    }
    audit::AuditOptions p = o->a;
    p.audits = split_list(o->audits);
    for (const auto& c : o->compare) {
      const auto eq = c.find('=');
      LETHE_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < c.size(), "--compare '", c,
                  "': give NAME=DIR (e.g. --compare standard=models/standard)");
      p.compare.emplace_back(c.substr(0, eq), c.substr(eq + 1));
    }
    p.extract.batch_size = p.ghost_options.batch_size = std::min<std::int64_t>(p.exposure.batch_size, 64);
    p.progress = !o->no_progress;
    p.device = global.device;
    LETHE_CHECK(!p.model.empty(), "give --model DIR (the model to audit)");
    LETHE_CHECK(!p.out.empty(), "give --out DIR (AUDIT.json and audit.html go there)");
    const audit::Json r = audit::run_audit(p);
    print_result(r);
    std::cout << "audit " << (p.out / "AUDIT.json").string() << "\n";
  });
}

}  // namespace lethe::cli

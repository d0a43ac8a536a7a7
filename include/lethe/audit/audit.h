// `lethe audit`: what does a model still leak? (docs/audits.md). Each audit is a scan over the
// shared scorer and generator (exposure.h, extract.h, forcing.h, ghost.h); run_audit runs the
// chosen ones on a model — and, given them, on the target and oracle of an unlearning, with
// the same canaries, sentences and samples — and writes AUDIT.json and audit.html.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lethe/audit/exposure.h"
#include "lethe/audit/extract.h"
#include "lethe/audit/forcing.h"
#include "lethe/audit/ghost.h"

namespace lethe::audit {

using Json = nlohmann::json;

struct AuditOptions {
  std::filesystem::path model;   // the audited model folder
  std::filesystem::path target;  // optional: the model before unlearning, audited the same way
  std::filesystem::path oracle;  // optional: the model retrained without the forget set
  std::string model_role = "model";  // the audited model's name in AUDIT.json ("unlearned" in the demo)
  // More models audited the same way, each under its name (`--compare NAME=DIR`): the standard
  // and perturbed models of an insertion study, checkpoints of one run. Audited after target
  // and oracle, before the model, in this order.
  std::vector<std::pair<std::string, std::filesystem::path>> compare;
  std::filesystem::path out;     // AUDIT.json and audit.html go here (new or empty unless force)
  std::vector<std::string> audits;  // empty: every audit whose input is given (forcing always)
  std::filesystem::path canaries;   // exposure: canaries JSONL
  std::filesystem::path ghost;      // ghost: ghost sentences JSONL
  std::filesystem::path corpus;     // extract: the training corpus JSONL ({"text"} a line)
  std::filesystem::path reference;  // extract: a reference model for the reference signal
  std::filesystem::path prefixes;   // extract: prompts JSONL ({"text"} a line); none: BOS
  std::filesystem::path tokenizer;  // default: each model folder's own
  ExposureOptions exposure;
  ExtractOptions extract;
  ForcingOptions forcing;
  GhostOptions ghost_options;
  std::int64_t forcing_top = 20;  // continuations listed per model
  std::uint64_t seed = 0;         // of sampling and of the bootstrap intervals
  std::string device = "cpu";
  bool force = false;
  bool progress = true;
};

// An audit's run on one model, returning {"items": [...], "aggregate": {...}} (docs/audits.md
// "AUDIT.json").
using AuditRun = std::function<Json(model::CausalLM& model, const text::Tokenizer& tok)>;

// One audit: its name, what it needs, and `prepare`, which reads its inputs once — canaries
// parsed, the corpus indexed, a reference model loaded — and returns the run that every audited
// model then gets in turn.
struct Audit {
  std::string name;
  std::string description;  // `lethe audit --list`
  std::string needs;        // the option its input comes from ("--canaries"), "" for none
  AuditRun (*prepare)(const AuditOptions& options) = nullptr;
};

const std::vector<const Audit*>& all_audits();
const Audit& find_audit(const std::string& name);  // error listing the known audits

// The audits `options` asks for, every input checked (files exist and parse) before any model
// is loaded.
std::vector<const Audit*> selected_audits(const AuditOptions& options);

// A mean with its 95% percentile-bootstrap interval: {"value", "ci": [lo, hi], "n"}.
Json mean_with_ci(const std::vector<double>& values, std::uint64_t seed);

// Runs the audits and writes <out>/AUDIT.json (format lethe.audit) and <out>/audit.html;
// returns AUDIT.json.
Json run_audit(const AuditOptions& options);

// AUDIT.json as HTML: per audit, the models side by side (used by audit.html and the demo).
std::string audit_report_html(const Json& audit);

}  // namespace lethe::audit

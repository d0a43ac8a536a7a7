// Removal-vs-suppression probes (docs/probes.md): did unlearning remove the forget set, or only
// hide it? A probe is a set of attacks, each a transformation of a copy of a model (quantize its
// weights, fine-tune it a few steps); after each attack the suite's forget-set metrics are
// measured again (eval::forget_view). Every attack runs on the candidate, on the oracle (the model
// retrained without the forget set: the level a removal must stay at) and, when given, on the
// target (the model before unlearning: the level a full recovery reaches).
//
//   recovery = (m_attacked − m_oracle) / (m_target − m_oracle)   (per metric; m_oracle and
//              m_target unattacked; 0 = still at the oracle, 1 = back at the target)
//   verdict  = not forgotten: unattacked, a metric's 95% interval misses the oracle's;
//              suppressed:    unattacked it matches, but after some attack a metric's interval
//                             misses the attacked oracle's, on the target's side of it;
//              removed:       every metric, after every attack, within the attacked oracle's.
//
// `lethe probe` runs it from the command line and writes PROBE.json.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lethe/eval/evaluate.h"
#include "lethe/model/quantize.h"

namespace lethe::model {
class CausalLM;
}
namespace lethe::text {
class Tokenizer;
}

namespace lethe::probe {

using Json = nlohmann::json;

struct ProbeOptions {
  std::filesystem::path model;      // the candidate: an unlearned model folder
  std::filesystem::path reference;  // the oracle (required)
  std::filesystem::path target;     // the model before unlearning (optional: recovery needs it)
  std::filesystem::path out;        // PROBE.json goes here (new or empty unless force)
  std::vector<std::string> probes = {"quantize", "relearn"};
  // quantize: the forms tried (model/quantize.h); empty: int8, int4-g128, int4-g32.
  std::vector<model::QuantSpec> quantizations;
  // relearn: full fine-tuning of a copy for each step count, on half of the forget set and on
  // as many benign (retain) items; AdamW at a constant `relearn_lr`, batches of `relearn_batch`.
  std::vector<std::int64_t> relearn_steps = {20};
  double relearn_lr = 1e-5;
  std::int64_t relearn_batch = 4;
  std::int64_t relearn_lora_rank = 0;  // > 0: a LoRA adapter of this rank (alpha 2·rank) instead of every weight
  // in_context: prompt attacks on the forget questions, each a leak rate (docs/probes.md):
  // context (the person's other facts before a held-back question), paraphrase, many-shot
  // (benign QA pairs before it), sampled (leak@k). A leak: ROUGE-L recall of the answer >=
  // leak_threshold.
  std::vector<std::string> in_context = {"context", "paraphrase", "many-shot", "sampled"};
  std::int64_t context_facts = 4;   // context: the person's other answers put before the question
  std::int64_t shots = 4;           // many-shot: benign QA pairs before the question
  std::int64_t samples = 8;         // sampled: k samples at temperature 1, top-p 0.95
  double leak_threshold = 0.5;
  // QA items per person, consecutive in the forget file (context needs them). 0: the data
  // folder's world.json qa_per_person, else TOFU's 20.
  std::int64_t items_per_person = 0;
  // linear: the bios.jsonl field a logistic-regression probe reads off the hidden state at the
  // end of each person's name (trained on the retained people, tested on the forget people).
  std::string linear_attribute = "birth_country";
  // parametric: the target's MLP value vectors followed (its K most aligned with the forget-only
  // answer tokens).
  std::int64_t trace_vectors = 20;
  // Suite, data, forget split, template, tokenizer, batch size, max_items, max_new_tokens, seed,
  // device: as for `lethe eval`. Its metrics (empty: the suite's forget view) are re-measured on
  // the suite's forget splits after every attack.
  eval::EvalOptions eval;
  bool force = false;
};

// One attack: a transformation of a copy of a model, named by its setting.
struct Attack {
  std::string setting;  // "int4-g128"
  double x = 0;         // its place on the probe's curve (bits per weight, steps)
  std::function<std::shared_ptr<model::CausalLM>(const model::CausalLM&)> apply;
  // The forget items measured after it: from item `skip_items` on, `max_items` of them (0: to
  // the end). Relearning on half of the forget set measures the other half; the unattacked
  // values it is compared with (recovery) are measured on the same items.
  std::int64_t skip_items = 0, max_items = 0;
};

// What a comparing probe records of one model (representation: per layer (items, C) states).
using Record = std::vector<at::Tensor>;

// A metric's value with its 95% interval (a point when it has none).
struct Measured {
  double value = 0, lo = 0, hi = 0;
};
using Measures = std::map<std::string, Measured>;  // by key
// A SUMMARY.json's numeric keys with their 95% intervals (summary["ci"]; a point where none).
Measures measures_of(const Json& summary);
Json measures_json(const Measures& m);  // {KEY: {"value", "ci": [lo, hi]}}

// What a measuring probe finds on one model: its own keys on the unattacked prompts and under
// each of its settings (in_context: the leak rate of plain greedy answers, then of each attack).
struct Measurement {
  Measures baseline;
  std::vector<std::string> settings;
  std::vector<Measures> attacked;  // one per setting
  Json examples = Json::object();  // setting -> a few items as prompted and answered, for a reader
};

// A probe attacks the model (`attacks`: each attack re-measures the forget view and enters the
// verdict), attacks the prompts (`measure`: its own keys unattacked and per setting, in the
// verdict too), or compares the models' internals (`record` each model once, `compare` the
// records by role: reported beside the verdict, not part of it).
struct Probe {
  std::string name;
  std::string description;  // `lethe probe --list`
  std::string x_label;      // the curve's axis
  std::vector<Attack> (*attacks)(const ProbeOptions& options, const text::Tokenizer& tok) = nullptr;
  Record (*record)(model::CausalLM& model, const text::Tokenizer& tok, const ProbeOptions& options) = nullptr;
  Json (*compare)(const std::map<std::string, Record>& by_role) = nullptr;
  Measurement (*measure)(model::CausalLM& model, const text::Tokenizer& tok, const ProbeOptions& options) = nullptr;
  void (*check)(const ProbeOptions& options) = nullptr;  // the probe's options, before any work
};

// The name that asks for every probe (the robustness suite): --probes robustness.
inline constexpr const char* kRobustness = "robustness";

// Every probe, in the order they run.
const std::vector<const Probe*>& all_probes();
const Probe& find_probe(const std::string& name);  // error listing the known probes

// Every check that needs no model: the reference, data and target exist, the probes, metrics
// and each probe's options are valid (an unlearn config's probe: section is checked so before
// any training). run_probes calls it.
void check_probe_options(const ProbeOptions& options);

// A `probe:` section of an unlearn config (docs/probes.md "In a run config"), paths relative to
// `base`; what the section leaves out comes from `defaults` (the run's model as the target, the
// eval: section's data, suite and forget split, the run's template, lengths and device).
// Unknown keys are an error listing the accepted ones.
ProbeOptions probe_options_from_config(const Json& section, const std::filesystem::path& base,
                                       const ProbeOptions& defaults);

// Runs the probes and writes <out>/PROBE.json (format lethe.probe, docs/probes.md) and
// <out>/probe.html; returns PROBE.json.
Json run_probes(const ProbeOptions& options);

// PROBE.json as an HTML fragment: the verdict per model, then one figure per probe and metric in
// a grid. `names` renames roles for display ("candidate" -> "unlearned (NPO)").
std::string probe_report_html(const Json& probe, const std::map<std::string, std::string>& names = {});

// ---- the arithmetic, exposed for tests ---------------------------------------------------------

// The accuracy on (test_x, test_y) of a multinomial logistic regression fitted to (train_x,
// train_y): features standardised by the training rows, L2 penalty 1e-2 · ||W||²/2, full-batch
// L-BFGS from zeros (deterministic). Labels in [0, classes).
double linear_probe_accuracy(const at::Tensor& train_x, const std::vector<std::int64_t>& train_y,
                             const at::Tensor& test_x, const std::vector<std::int64_t>& test_y, std::int64_t classes);

// Linear CKA of two representations of the same n items, x (n, d1) and y (n, d2):
// ||AᵀB||²_F / (||AᵀA||_F ||BᵀB||_F) with A, B the column-centred x, y. 1 for representations
// equal up to rotation and isotropic scaling; an error when one is constant.
double linear_cka(const at::Tensor& x, const at::Tensor& y);

// (attacked − oracle) / (target − oracle); none when target equals oracle (nothing to recover).
std::optional<double> recovery(double attacked, double oracle, double target);
bool overlap(const Measured& a, const Measured& b);

enum class Verdict { kRemoved, kSuppressed, kNotForgotten };
const char* verdict_name(Verdict v);  // "removed", "suppressed", "not forgotten"

// One metric of one model: unattacked and after each attack, beside the oracle's (and the
// target's unattacked value when known: it gives the direction a recovery moves in).
struct MetricTrace {
  std::string key;
  Measured baseline, oracle_baseline;
  std::vector<std::string> settings;                // the attacks, named for the verdict's reason
  std::vector<Measured> attacked, oracle_attacked;  // one per attack, same order
  std::optional<Measured> target_baseline;
};
struct VerdictReason {
  Verdict verdict = Verdict::kRemoved;
  std::string why;  // the metric and attack that decided it, with the numbers
};
// The verdict over every metric and attack (header comment). Without a target, any attacked
// interval that misses the attacked oracle's counts as a recovery.
VerdictReason judge(const std::vector<MetricTrace>& metrics);

// The in_context probe's leak rule: ROUGE-L recall (stemmed, as TOFU's ROUGE) of `answer` in
// `generation` reaches `threshold`.
bool leaks(const std::string& answer, const std::string& generation, double threshold);

}  // namespace lethe::probe

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

// A probe either attacks (`attacks`: each attack re-measures the forget view and enters the
// verdict) or compares the models' internals (`record` each model once, `compare` the records
// by role: reported beside the verdict, not part of it).
struct Probe {
  std::string name;
  std::string description;  // `lethe probe --list`
  std::string x_label;      // the curve's axis
  std::vector<Attack> (*attacks)(const ProbeOptions& options, const text::Tokenizer& tok) = nullptr;
  Record (*record)(model::CausalLM& model, const text::Tokenizer& tok, const eval::EvalOptions& eval) = nullptr;
  Json (*compare)(const std::map<std::string, Record>& by_role) = nullptr;
};

// Every probe, in the order they run.
const std::vector<const Probe*>& all_probes();
const Probe& find_probe(const std::string& name);  // error listing the known probes

// Runs the probes and writes <out>/PROBE.json (format lethe.probe, docs/probes.md); returns it.
Json run_probes(const ProbeOptions& options);

// ---- the arithmetic, exposed for tests ---------------------------------------------------------

// Linear CKA of two representations of the same n items, x (n, d1) and y (n, d2):
// ||AᵀB||²_F / (||AᵀA||_F ||BᵀB||_F) with A, B the column-centred x, y. 1 for representations
// equal up to rotation and isotropic scaling; an error when one is constant.
double linear_cka(const at::Tensor& x, const at::Tensor& y);

// A metric's value with its 95% interval (a point when it has none).
struct Measured {
  double value = 0, lo = 0, hi = 0;
};
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
  std::vector<Measured> attacked, oracle_attacked;  // one per attack, same order
  std::optional<Measured> target_baseline;
};
struct VerdictReason {
  Verdict verdict = Verdict::kRemoved;
  std::string why;  // the metric and attack that decided it, with the numbers
};
// The verdict over every metric and attack (header comment). Without a target, any attacked
// interval that misses the attacked oracle's counts as a recovery.
VerdictReason judge(const std::vector<MetricTrace>& metrics, const std::vector<std::string>& settings);

}  // namespace lethe::probe

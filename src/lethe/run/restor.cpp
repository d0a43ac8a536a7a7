// The RESTOR protocol (include/lethe/run/restor.h, docs/probes.md "RESTOR"): corrupt, unlearn
// the corruption, measure what comes back. Both steps are ordinary runs of this layer, built as
// configs and written beside their outputs (corrupt.yaml, unlearn.yaml) for a user to rerun.
#include "lethe/run/restor.h"

#include <chrono>
#include <optional>

#include "lethe/core/config.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/core/progress.h"
#include "lethe/core/runtime.h"
#include "lethe/core/version.h"
#include "lethe/data/records.h"
#include "lethe/eval/evaluate.h"
#include "lethe/eval/summary.h"
#include "lethe/model/load.h"
#include "lethe/probe/probe.h"
#include "lethe/run/run.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"

namespace lethe::run {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// The forget split's questions, each with its first perturbed (wrong) answer.
std::vector<data::QARecord> corrupted_facts(const RestorOptions& o) {
  const fs::path file = o.data / (o.forget_split + "_perturbed.jsonl");
  LETHE_CHECK(fs::exists(file), "restor: ", file.string(),
              " is missing: the wrong facts are the forget split's perturbed answers");
  std::vector<data::QARecord> items = data::read_qa(file);
  if (o.max_items > 0 && items.size() > static_cast<std::size_t>(o.max_items)) {
    items.resize(static_cast<std::size_t>(o.max_items));
  }
  LETHE_CHECK(!items.empty(), "restor: ", file.string(), " has no items");
  std::vector<data::QARecord> out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    LETHE_CHECK(!items[i].perturbed_answers.empty(), "restor: ", file.string(), ": item ", i + 1,
                " has no perturbed_answer");
    data::QARecord r;
    r.question = items[i].question;
    r.answer = items[i].perturbed_answers.front();
    out.push_back(std::move(r));
  }
  return out;
}

void write_qa_jsonl(const fs::path& file, const std::vector<data::QARecord>& items) {
  std::string text;
  for (const auto& r : items) text += Json{{"question", r.question}, {"answer", r.answer}}.dump() + "\n";
  write_file_atomic(file, text);
}

// retainNN for forgetNN: the people the corruption leaves alone.
fs::path retain_file(const RestorOptions& o) {
  LETHE_CHECK(o.forget_split.rfind("forget", 0) == 0 && o.forget_split.size() > 6,
              "restor: --forget-split must be forgetNN, got '", o.forget_split, "'");
  const int pct = std::stoi(o.forget_split.substr(6));
  std::string nn = std::to_string(100 - pct);
  if (nn.size() < 2) nn = "0" + nn;
  const fs::path f = o.data / ("retain" + nn + ".jsonl");
  LETHE_CHECK(fs::exists(f), "restor: ", f.string(), " is missing: unlearning the corruption needs the retain split");
  return f;
}

// The overrides of one config: "corrupt.<key>=v" to the corruption's, the rest to the unlearning's.
void apply_overrides(Json& cfg, const std::vector<std::string>& overrides, bool corrupt) {
  const std::string prefix = "corrupt.";
  for (const auto& o : overrides) {
    const bool is_corrupt = o.rfind(prefix, 0) == 0;
    if (is_corrupt == corrupt) apply_override(cfg, is_corrupt ? o.substr(prefix.size()) : o);
  }
}

struct Measures3 {
  probe::Measures truth, wrong;
};

// The true answers (forget, retain) and the wrong ones (forget) of one model.
Measures3 measure(const fs::path& model_dir, const text::Tokenizer& tok, const fs::path& tokenizer_dir,
                  const RestorOptions& o, const fs::path& wrong_data) {
  model::LoadOptions lo;
  lo.device = parse_device(o.device);
  auto m = model::load_model(model_dir, lo);
  eval::EvalOptions e;
  e.suite = "tofu";
  e.model = model_dir;
  e.data = o.data;
  e.forget_split = o.forget_split;
  e.metrics = {"probability", "rouge"};
  e.splits = {"forget", "retain"};
  e.prompt_template = text::PromptTemplate::resolve(o.prompt_template, tokenizer_dir);
  e.batch_size = o.batch_size;
  e.max_length = o.max_length;
  e.max_items = o.max_items;
  e.seed = o.seed;
  e.device = o.device;
  e.progress = o.progress;
  e.report = false;
  Measures3 r;
  r.truth = probe::measures_of(eval::summarize(eval::evaluate_model(*m, tok, e, nullptr), nullptr, e.metrics, e.seed));
  e.data = wrong_data;
  e.splits = {"forget"};
  r.wrong = probe::measures_of(eval::summarize(eval::evaluate_model(*m, tok, e, nullptr), nullptr, e.metrics, e.seed));
  return r;
}

// (a − from) / (to − from) for each forget key; null where the 95% intervals of `from` and
// `to` overlap: a span the data cannot tell from zero gives no ratio (ROUGE of wrong answers
// that share most words with the true ones would give ±40).
Json ratios(const probe::Measures& a, const probe::Measures& from, const probe::Measures& to) {
  Json j = Json::object();
  for (const auto& [k, v] : a) {
    if (!from.count(k) || !to.count(k) || k.rfind("forget_", 0) != 0) continue;
    const std::optional<double> r = probe::recovery(v.value, from.at(k).value, to.at(k).value);
    j[k] = r && !probe::overlap(from.at(k), to.at(k)) ? Json(*r) : Json();
  }
  return j;
}

}  // namespace

Json run_restor(const RestorOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  LETHE_CHECK(!o.model.empty(), "restor: give --model DIR (the clean target)");
  LETHE_CHECK(fs::exists(o.model / "config.json"), "restor: --model ", o.model.string(),
              ": not a model folder (no config.json)");
  LETHE_CHECK(!o.data.empty(), "restor: give --data DIR (a TOFU-layout folder)");
  LETHE_CHECK(fs::is_directory(o.data), "restor: --data ", o.data.string(), ": no such folder");
  LETHE_CHECK(!o.out.empty(), "restor: give --out DIR");
  check_output_apart(o.out, "--out", {{"--model", o.model}, {"--data", o.data}});
  const std::vector<data::QARecord> wrong = corrupted_facts(o);
  const fs::path retain = retain_file(o), truth = o.data / (o.forget_split + ".jsonl");
  LETHE_CHECK(fs::exists(truth), "restor: ", truth.string(), " is missing");
  LETHE_CHECK(!fs::exists(o.out) || fs::is_empty(o.out) || o.force, "restor: --out ", o.out.string(),
              " is not empty (--force replaces it)");

  // The configs name absolute paths: they are read relative to --out, and rerun from anywhere.
  const fs::path dir = fs::absolute(o.out);
  // Both configs are built and checked before any training: a bad --set fails here.
  const fs::path facts = dir / "data" / "corrupted.jsonl", wrong_data = dir / "data" / "wrong",
                 corrupt_train = dir / "data" / "corrupt_train.jsonl";
  // Both runs: 5 epochs of batches of 4 at TOFU's fine-tuning lr, constant, no checkpoints.
  const Json train = {{"epochs", 5},         {"batch_size", 4},         {"lr", 1e-5},
                      {"schedule", "constant"}, {"checkpoint_every", 0}, {"progress", o.progress}};
  Json corrupt = {{"model", fs::absolute(o.model).string()},
                  {"output_dir", (dir / "corrupted").string()},
                  {"seed", o.seed},
                  {"device", o.device},
                  {"data", {{"train", corrupt_train.string()}, {"template", o.prompt_template}, {"max_length", o.max_length}}},
                  {"train", train}};
  apply_overrides(corrupt, o.overrides, true);
  Json unlearn = {{"model", (dir / "corrupted" / "model").string()},
                  {"output_dir", (dir / "restored").string()},
                  {"seed", o.seed},
                  {"device", o.device},
                  {"data", {{"forget", facts.string()}, {"retain", fs::absolute(retain).string()},
                            {"template", o.prompt_template}, {"max_length", o.max_length}}},
                  {"method", {{"name", o.method}}},
                  {"train", train}};
  unlearn["train"]["resume"] = false;
  if (fs::exists(o.data / "idontknow.jsonl")) unlearn["data"]["idk"] = fs::absolute(o.data / "idontknow.jsonl").string();
  apply_overrides(unlearn, o.overrides, false);

  {  // every key of the unlearning config, checked on the target before the corruption exists
    Json check = unlearn;
    check["model"] = fs::absolute(o.model).string();
    check["data"]["forget"] = fs::absolute(truth).string();
    (void)parse_run_config(check, dir, RunKind::kUnlearn);
  }
  if (fs::exists(dir)) fs::remove_all(dir);  // empty, or --force
  fs::create_directories(wrong_data);
  write_qa_jsonl(facts, wrong);
  // The corruption fine-tunes on the wrong facts beside the retain split, so that it overwrites
  // what the model knew of the forget people and leaves everyone else as they were.
  std::vector<data::QARecord> mixed = wrong;
  for (auto& r : data::read_qa(retain)) mixed.push_back(std::move(r));
  write_qa_jsonl(corrupt_train, mixed);
  write_qa_jsonl(wrong_data / (o.forget_split + ".jsonl"), wrong);
  write_file_atomic(dir / "corrupt.yaml", corrupt.dump(2) + "\n");  // JSON is YAML
  write_file_atomic(dir / "unlearn.yaml", unlearn.dump(2) + "\n");
  // The unlearning config names the corrupted model, which does not exist yet: parsed after it.
  const RunConfig corrupt_cfg = parse_run_config(corrupt, dir, RunKind::kFinetune);

  Json timing = Json::object();
  auto t = std::chrono::steady_clock::now();
  log_info("restor: corrupting ", o.model.string(), " with ", wrong.size(), " wrong facts of ", o.forget_split,
           " (", (dir / "corrupt.yaml").string(), ")");
  const RunSummary corrupted = run(corrupt_cfg);
  timing["corrupt_s"] = seconds_since(t);
  t = std::chrono::steady_clock::now();
  log_info("restor: unlearning the corruption with ", o.method, " (", (dir / "unlearn.yaml").string(), ")");
  const RunSummary restored = run(parse_run_config(unlearn, dir, RunKind::kUnlearn));
  timing["unlearn_s"] = seconds_since(t);

  t = std::chrono::steady_clock::now();
  const std::vector<std::pair<std::string, fs::path>> models = {
      {"target", o.model}, {"corrupted", corrupted.model_dir}, {"restored", restored.model_dir}};
  const auto tok = text::load_tokenizer(o.model);  // the runs copy the target's tokenizer
  std::map<std::string, Measures3> m;
  for (const auto& [role, path] : models) {
    log_info("restor: evaluating the ", role, " (", path.string(), ")");
    m[role] = measure(path, *tok, o.model, o, wrong_data);
  }
  timing["eval_s"] = seconds_since(t);

  Json out = {{"format", "lethe.restor"},
              {"format_version", 1},
              {"data", o.data.string()},
              {"forget_split", o.forget_split},
              {"items", wrong.size()},
              {"method", o.method},
              {"overrides", o.overrides},
              {"configs", {{"corrupt", (dir / "corrupt.yaml").string()}, {"unlearn", (dir / "unlearn.yaml").string()}}},
              {"models", Json::object()}};
  for (const auto& [role, path] : models) {
    out["models"][role] = {{"path", path.string()}, {"true", probe::measures_json(m[role].truth)},
                           {"wrong", probe::measures_json(m[role].wrong)}};
  }
  out["restoration"] = ratios(m["restored"].truth, m["corrupted"].truth, m["target"].truth);
  out["removal"] = ratios(m["restored"].wrong, m["corrupted"].wrong, m["target"].wrong);
  out["corruption"] = Json::object();
  for (const auto& [k, v] : m["corrupted"].truth) {  // the share of the true knowledge the corruption took
    if (k.rfind("forget_", 0) == 0 && m["target"].truth.count(k) && m["target"].truth.at(k).value != 0) {
      out["corruption"][k] = 1.0 - v.value / m["target"].truth.at(k).value;
    }
  }
  timing["total_s"] = seconds_since(t0);
  out["seconds"] = timing;
  out["lethe_version"] = version();
  write_file_atomic(dir / "RESTOR.json", out.dump(2) + "\n");
  return out;
}

}  // namespace lethe::run

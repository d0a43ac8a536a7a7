// The pass every suite shares and `run_eval`: model -> EVAL.json -> SUMMARY.json -> report.html.
// A suite (eval/suites/) reads its splits; the plan says what each split needs measured for the
// requested metrics (eval/metric.h); the pass measures it once through the engine and hands each
// item to the metrics.
#include "lethe/eval/evaluate.h"

#include <algorithm>
#include <chrono>

#include "core/json_util.h"
#include "eval/suite.h"
#include "lethe/eval/engine.h"
#include "lethe/core/config.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/core/range.h"
#include "lethe/core/runtime.h"
#include "lethe/core/version.h"
#include "lethe/eval/metric.h"
#include "lethe/eval/report.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"

namespace lethe::eval {
namespace fs = std::filesystem;
namespace {

// Negative numbers are errors (0 means the suite's default); the CLI and run configs refuse 0
// as well, where absence is how the default is asked for.
void check_eval_numbers(const EvalOptions& opt) {
  LETHE_CHECK(opt.batch_size > 0, "--batch-size must be positive, got ", opt.batch_size);
  LETHE_CHECK(opt.max_new_tokens >= 0, "--max-new-tokens must be positive, got ", opt.max_new_tokens);
  LETHE_CHECK(opt.max_length >= 0, "--max-length must be positive, got ", opt.max_length);
  LETHE_CHECK(opt.max_items >= 0, "--max-items must be positive, got ", opt.max_items);
  LETHE_CHECK(opt.skip_items >= 0, "skip_items must not be negative, got ", opt.skip_items);
  check_range("--min-k", opt.min_k, Range::unit_left_open());
}

// The plan of a pass, every input file checked before any work.
std::vector<PlannedSplit> checked_plan(const EvalOptions& opt, const std::vector<std::string>& metrics) {
  const Suite& suite = find_suite(opt.suite);
  LETHE_CHECK(fs::is_directory(opt.data), opt.data.string(), ": no such data folder (--data)");
  if (suite.check_options) suite.check_options(opt);
  auto plan = plan_splits(suite, opt, metrics);
  check_plan_files(plan, opt);
  return plan;
}

struct Pass {
  model::CausalLM& model;
  const SuiteIo& io;
  const ReferenceData* ref;
  std::int64_t pad_id;
  EngineOptions eng;
};

// One split: read, then measured as the plan says (answers, alternatives, generations, gradient
// norms, in that order), then every planned metric's per-item part on every item.
Json run_split(const Pass& p, const PlannedSplit& ps) {
  const unsigned needs = ps.needs;
  SplitData d = ps.spec->read(p.io, needs);
  const std::string label = p.io.opt.suite + " " + ps.spec->name;
  std::vector<SequenceScore> scores;
  if (needs & (kScores | kExtras)) {
    scores = score_examples(p.model, d.scored, p.pad_id, (needs & kExtras) != 0, p.eng, label + " answers");
  }
  // Alternatives of all items in one scoring call, as they batch best.
  std::vector<data::Example> flat;
  std::vector<std::pair<std::size_t, std::size_t>> range;
  for (auto& alt : d.alternates) {
    const std::size_t start = flat.size();
    for (auto& e : alt) flat.push_back(std::move(e));
    range.emplace_back(start, flat.size());
  }
  std::vector<SequenceScore> alt_scores;
  if (!flat.empty()) alt_scores = score_examples(p.model, flat, p.pad_id, false, p.eng, label + " alternatives");
  std::vector<Generation> gens;
  if ((needs & kGeneration) && !d.prompts.empty()) {
    const std::int64_t n = p.io.opt.max_new_tokens > 0 ? p.io.opt.max_new_tokens : d.max_new_tokens;
    gens = generate_texts(p.model, p.io.tok, d.prompts, n, d.stop_strings, p.eng, label + " generation");
  }
  std::vector<double> grads;
  if (needs & kGradients) grads = gradient_norms(p.model, d.scored, p.pad_id, p.eng, label + " gradnorm");

  Json items = Json::array();
  for (std::size_t i = 0; i < d.items.size(); ++i) {
    Json it = std::move(d.items[i]);
    ItemMeasure m;
    m.split = ps.spec->name;
    m.index = i;
    m.reference = p.ref;
    m.min_k = p.io.opt.min_k;
    m.options = d.options;
    if (!scores.empty()) {
      m.score = &scores[i];
      m.scored_text = d.scored_text[i];
      if (ps.spec->scored_fields) ps.spec->scored_fields(scores[i], it);
    }
    if (!range.empty()) {
      for (std::size_t k = range[i].first; k < range[i].second; ++k) m.alternates.push_back(&alt_scores[k]);
    }
    if (!gens.empty()) {
      it["generation"] = gens[i].text;
      it["stop_reason"] = gens[i].stop_reason;
      m.generation = &gens[i].text;
      m.truth = d.truths[i];
    }
    if (!grads.empty()) m.gradient_norm = grads[i];
    for (const Metric* metric : ps.metrics) {
      if (metric->per_item) metric->per_item(m, it);
    }
    items.push_back(std::move(it));
  }
  return {{"file", d.file.string()}, {"items", items}};
}

std::vector<std::string> resolved_metrics(const EvalOptions& opt, bool have_reference) {
  if (opt.metrics.empty()) return default_metrics(opt.suite, have_reference);
  check_metrics(opt.suite, opt.metrics, have_reference);
  return opt.metrics;
}

bool is_model_folder(const fs::path& p) { return fs::is_directory(p) && fs::exists(p / "config.json"); }

}  // namespace

Json evaluate_model(model::CausalLM& model, const text::Tokenizer& tok, const EvalOptions& opt,
                    const ReferenceData* reference) {
  check_eval_numbers(opt);
  const auto metrics = resolved_metrics(opt, reference != nullptr);
  const auto plan = checked_plan(opt, metrics);
  EngineTiming timing;
  text::Truncation truncation;
  const SuiteIo io{opt, tok, model.config().max_position_embeddings, &truncation};
  const Pass p{model, io, reference, text::padding_id(tok), {opt.batch_size, opt.progress, &timing}};
  const auto t0 = std::chrono::steady_clock::now();
  Json splits = Json::object();
  for (const auto& ps : plan) splits[ps.spec->name] = run_split(p, ps);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (truncation.truncated_items > 0 && !opt.reference_pass) {
    log_warn("max_length ", opt.max_length > 0 ? std::to_string(opt.max_length) : std::string("(the suite's)"),
             " truncated the answers of ", truncation.truncated_items, " of ", truncation.items, " scored items (",
             truncation.answer_tokens_lost, " answer tokens lost); their metrics cover only the tokens kept");
  }
  return {{"format", "lethe.eval"},
          {"format_version", kEvalFormatVersion},
          {"suite", opt.suite},
          {"model", opt.model.string()},
          {"metrics", metrics},
          {"settings",
           {{"data", opt.data.string()}, {"forget_split", opt.forget_split}, {"template", opt.prompt_template.name},
            {"batch_size", opt.batch_size}, {"max_new_tokens", opt.max_new_tokens}, {"max_length", opt.max_length},
            {"max_items", opt.max_items}, {"skip_items", opt.skip_items}, {"min_k", opt.min_k}, {"generation", opt.generation},
            {"lethe_version", version()}}},
          {"seconds", seconds},
          {"timing",
           {{"scoring_s", timing.scoring_s}, {"generation_s", timing.generation_s}, {"gradnorm_s", timing.gradnorm_s},
            {"scored_tokens", timing.scored_tokens}, {"generated_tokens", timing.generated_tokens}}},
          {"truncation",
           {{"items", truncation.items}, {"truncated_items", truncation.truncated_items},
            {"answer_tokens_lost", truncation.answer_tokens_lost}}},
          {"splits", splits}};
}

std::vector<std::string> eval_metrics(const EvalOptions& opt) { return resolved_metrics(opt, !opt.reference.empty()); }

std::optional<ReferenceData> prepare_reference(const EvalOptions& opt, const std::vector<std::string>& metrics) {
  if (opt.reference.empty()) return std::nullopt;
  if (!is_model_folder(opt.reference)) return reference_from_file(opt.reference);
  log_info("evaluating the reference model ", opt.reference.string(), " (scoring only)");
  model::LoadOptions lo;
  lo.device = parse_device(opt.device);
  lo.dtype = model::parse_dtype(opt.dtype, "eval: dtype");
  auto ref_model = model::load_model(opt.reference, lo);
  auto ref_tok = text::load_tokenizer(opt.reference);
  EvalOptions ro = opt;
  ro.model = opt.reference;
  ro.reference_pass = true;
  ro.generation = false;
  ro.metrics.clear();
  for (const auto& m : metrics) {
    for (const auto& r : find_metric(m).from_reference) ro.metrics.push_back(r);
  }
  if (ro.metrics.empty()) ro.metrics.push_back(find_suite(opt.suite).reference_fallback);
  std::sort(ro.metrics.begin(), ro.metrics.end());
  ro.metrics.erase(std::unique(ro.metrics.begin(), ro.metrics.end()), ro.metrics.end());
  Json ref_eval = evaluate_model(*ref_model, *ref_tok, ro, nullptr);
  ReferenceData ref = reference_from_eval(ref_eval, opt.reference.string());
  ref.kind = "model";
  ref.eval = std::move(ref_eval);
  return ref;
}

namespace {

// The files of an evaluation folder, written into `dir` (a staging folder); `final_dir` is
// where they will be, for the paths returned.
EvalOutputs write_eval_files(const fs::path& dir, const fs::path& final_dir, Json eval, Json summary,
                             const ReferenceData* ref, const std::string& title, bool report) {
  EvalOutputs out;
  out.eval = std::move(eval);
  out.summary = std::move(summary);
  if (!out.eval.is_null()) {
    out.eval_path = final_dir / "EVAL.json";
    write_file_atomic(dir / "EVAL.json", out.eval.dump(1));
  }
  out.summary_path = final_dir / "SUMMARY.json";
  write_file_atomic(dir / "SUMMARY.json", out.summary.dump(2));
  if (report) {
    out.report_path = final_dir / "report.html";
    ReportInput in;
    in.title = title;
    in.models.push_back({"model", out.summary, out.eval});
    write_file_atomic(dir / "report.html", render_report(in, ref));
  }
  if (ref != nullptr && !ref->eval.is_null()) {
    fs::create_directories(dir / "reference");
    write_file_atomic(dir / "reference" / "EVAL.json", ref->eval.dump(1));
  }
  return out;
}

}  // namespace

EvalOutputs write_eval_outputs(const fs::path& dir, Json eval, Json summary, const ReferenceData* ref,
                               const std::string& title, bool report, bool replace) {
  StagedFolder staged(dir, replace, "evaluation folder");
  EvalOutputs out = write_eval_files(staged.path(), staged.target(), std::move(eval), std::move(summary), ref, title,
                                     report);
  staged.commit();
  return out;
}

EvalOptions eval_options_from_config(const Json& j, const fs::path& base, const fs::path& out, std::int64_t& every) {
  ConfigSection c(j, "eval");
  auto path = [&](const char* k) {
    const std::string p = c.get_path(k);
    if (p.empty()) return fs::path();
    return fs::path(p).is_absolute() ? fs::path(p) : base / p;
  };
  // Given means positive: leaving a key out is how the default is asked for.
  const Range positive = Range::at_least(1).whole();
  EvalOptions o;
  o.suite = c.get<std::string>("suite", "tofu");
  {
    const auto known = suite_names();
    std::string list;
    for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
    LETHE_CHECK(std::find(known.begin(), known.end(), o.suite) != known.end(), "config: 'eval.suite' must be one of ",
                list, ", got '", o.suite, "'");
  }
  o.data = path("data");
  LETHE_CHECK(!o.data.empty(), "config: missing required key 'eval.data' (the suite's data folder)");
  o.reference = path("reference");
  o.forget_split = c.get<std::string>("forget_split", o.forget_split);
  const Json& metrics_list = c.raw("metrics");
  if (!metrics_list.is_null()) {
    LETHE_CHECK(metrics_list.is_array() && std::all_of(metrics_list.begin(), metrics_list.end(),
                                                       [](const Json& m) { return m.is_string(); }),
                "config: 'eval.metrics' must be a list of metric names, got ", metrics_list.dump());
    o.metrics = metrics_list.get<std::vector<std::string>>();
  }
  // Absent: 0, the suite's default (all items, the suite's lengths, no periodic evaluation).
  o.max_items = c.get<std::int64_t>("max_items", 0, positive);
  o.max_new_tokens = c.get<std::int64_t>("max_new_tokens", 0, positive);
  o.max_length = c.get<std::int64_t>("max_length", 0, positive);
  o.batch_size = c.get<std::int64_t>("batch_size", 8, positive);
  every = c.get<std::int64_t>("every", 0, positive);
  c.done();
  o.out = out;
  const auto metrics = eval_metrics(o);  // validate names and the reference now, before any training
  (void)checked_plan(o, metrics);
  return o;
}

EvalOutputs run_eval(const EvalOptions& opt) {
  LETHE_CHECK(!opt.out.empty(), "an output folder is needed (--out)");
  check_output_apart(opt.out, "--out",
                     {{"--model", opt.model}, {"--tokenizer", opt.tokenizer}, {"--data", opt.data},
                      {"--reference", opt.reference}, {"--from-logs", opt.from_logs}});
  // Refuses a file or a non-empty folder now, before any work; a killed evaluation leaves the
  // old folder as it was.
  StagedFolder staged(opt.out, opt.force, "--out");
  const bool have_reference = !opt.reference.empty();
  std::optional<ReferenceData> ref;
  Json eval, summary;
  if (!opt.from_logs.empty()) {
    LETHE_CHECK(opt.model.empty(), "--from-logs summarises a log without a model: leave out --model");
    LETHE_CHECK(!have_reference || !is_model_folder(opt.reference),
                "--from-logs needs a reference log (EVAL.json or TOFU legacy log), not a model folder");
    // A log of the right shape with a value of the wrong type deep inside: name the file.
    if (have_reference) ref = json_named(opt.reference.string(), [&] { return reference_from_file(opt.reference); });
    json_named(opt.from_logs.string(), [&] {
      if (is_tofu_legacy_log(opt.from_logs)) {
        LETHE_CHECK(opt.suite == "tofu", opt.from_logs.string(), " is a TOFU legacy log: use --suite tofu");
        summary = summarize_tofu_legacy(opt.from_logs, ref ? &*ref : nullptr, opt.seed);
      } else {
        eval = read_eval_file(opt.from_logs);
        LETHE_CHECK(eval.value("suite", "") == opt.suite, opt.from_logs.string(), " is a ", eval.value("suite", "?"),
                    " log, not ", opt.suite);
        summary = summarize(eval, ref ? &*ref : nullptr, eval_metrics(opt), opt.seed);
      }
      return 0;
    });
  } else {
    LETHE_CHECK(is_model_folder(opt.model), opt.model.string(), ": not a model folder (needs config.json; --model)");
    const auto metrics = eval_metrics(opt);
    (void)checked_plan(opt, metrics);
    auto tok = text::load_tokenizer(opt.tokenizer.empty() ? opt.model : opt.tokenizer);
    ref = prepare_reference(opt, metrics);
    model::LoadOptions lo;
    lo.device = parse_device(opt.device);
    lo.dtype = model::parse_dtype(opt.dtype, "eval: dtype");
    auto m = model::load_model(opt.model, lo);
    eval = evaluate_model(*m, *tok, opt, ref ? &*ref : nullptr);
    summary = summarize(eval, ref ? &*ref : nullptr, metrics, opt.seed);
  }
  EvalOutputs out = write_eval_files(staged.path(), staged.target(), std::move(eval), std::move(summary),
                                     ref ? &*ref : nullptr, "lethe " + opt.suite + " evaluation", opt.report);
  staged.commit();
  return out;
}

}  // namespace lethe::eval

// The suites' per-item passes (TOFU, MUSE) and `run_eval`: model -> EVAL.json -> SUMMARY.json
// -> report.html.
#include "lethe/eval/evaluate.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "eval/engine.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/runtime.h"
#include "lethe/data/records.h"
#include "lethe/eval/metrics.h"
#include "lethe/eval/report.h"
#include "lethe/eval/rouge.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"

namespace lethe::eval {
namespace fs = std::filesystem;
namespace {

struct Pass {
  model::CausalLM& model;
  const text::Tokenizer& tok;
  const EvalOptions& opt;
  const ReferenceData* ref;
  std::set<std::string> metrics;
  std::int64_t pad_id;
  EngineOptions eng;

  bool want(const std::string& m) const { return metrics.count(m) > 0; }
  bool want_any_mia() const {
    for (const char* a : kMiaAttacks) {
      if (want(a)) return true;
    }
    return want("privleak");
  }
  bool want_extras() const {
    return want("exact_memorization") || want("extraction_strength") || want("mia_min_k_plus_plus");
  }
};

template <typename T>
void limit(std::vector<T>& v, std::int64_t max_items) {
  if (max_items > 0 && v.size() > static_cast<std::size_t>(max_items)) v.resize(static_cast<std::size_t>(max_items));
}

fs::path need_file(const fs::path& p, const std::string& what) {
  LETHE_CHECK(fs::is_regular_file(p), p.string(), ": missing (", what, ")");
  return p;
}

data::Example qa_example(const Pass& p, const std::string& q, const std::string& a, std::size_t max_len,
                         std::vector<std::int64_t>* prompt = nullptr, const std::vector<text::QA>& few_shot = {}) {
  text::EncodedQA e = text::encode_qa(p.tok, p.opt.prompt_template, {q, a}, max_len, few_shot);
  // Generation starts from the prompt tokens exactly as they appear before the answer in the
  // scored sequence. Encoding the prompt text alone can end differently: with SentencePiece,
  // "Answer: " alone ends in a lone "▁" that the answer would have absorbed ("▁Paris").
  if (prompt) prompt->assign(e.input_ids.begin(), e.input_ids.begin() + static_cast<std::ptrdiff_t>(std::max<std::size_t>(e.prompt_length, 1)));
  return {std::move(e.input_ids), std::move(e.labels)};
}

void add_mia(const Pass& p, Json& items, const std::vector<SequenceScore>& scores, const std::vector<std::string>& texts,
             const std::vector<data::Example>& examples, const std::string& split, const std::string& label) {
  std::vector<double> grad;
  if (p.want("mia_gradnorm")) grad = gradient_norms(p.model, examples, p.pad_id, p.eng, label + " gradnorm");
  const std::vector<double>* ref_nll = nullptr;
  if (p.want("mia_reference")) {
    LETHE_CHECK(p.ref && p.ref->avg_nll.count(split) && p.ref->avg_nll.at(split).size() >= scores.size(),
                "mia_reference: the reference has no per-item NLL for the ", split, " split (give a model folder or a ",
                "lethe EVAL.json of the same items)");
    ref_nll = &p.ref->avg_nll.at(split);
  }
  for (std::size_t i = 0; i < scores.size(); ++i) {
    Json m = Json::object();
    const double nll = avg_nll(scores[i]);
    if (p.want("mia_loss")) m["mia_loss"] = nll;
    if (p.want("mia_zlib")) m["mia_zlib"] = mia_zlib(scores[i], texts[i]);
    if (p.want("mia_min_k") || p.want("privleak")) m["mia_min_k"] = mia_min_k(scores[i], p.opt.min_k);
    if (p.want("mia_min_k_plus_plus")) m["mia_min_k_plus_plus"] = mia_min_k_plus_plus(scores[i], p.opt.min_k);
    if (!grad.empty()) m["mia_gradnorm"] = grad[i];
    if (ref_nll) m["mia_reference"] = nll - (*ref_nll)[i];
    items[i]["mia"] = m;
  }
}

void add_memorization(const Pass& p, Json& item, const SequenceScore& s) {
  if (p.want("exact_memorization")) item["exact_memorization"] = exact_memorization(s);
  if (p.want("extraction_strength")) item["extraction_strength"] = extraction_strength(s);
}

std::vector<std::string> stop_strings_for(const text::PromptTemplate& t) {
  std::string s = t.user_start;
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return s.empty() ? std::vector<std::string>{} : std::vector<std::string>{s};
}

// ---- TOFU -------------------------------------------------------------------------------------

// One TOFU split; `options`: wrong answers are options (ra, wf), the answer is its own paraphrase.
Json tofu_split(const Pass& p, const std::string& split, const fs::path& file, bool options) {
  auto records = data::read_qa(file);
  limit(records, p.opt.max_items);
  LETHE_CHECK(!records.empty(), file.string(), ": no items");
  const auto max_len = static_cast<std::size_t>(p.opt.max_length > 0 ? p.opt.max_length : 512);
  const bool need_tr = p.want("truth_ratio") || p.want("forget_quality") || p.want("model_utility") ||
                       (options && p.want("probability_w_options"));
  const bool mia_split = split == "forget" || split == "holdout";
  const bool extras = mia_split && p.want_extras();

  std::vector<data::Example> answers, alternates;
  std::vector<std::vector<std::int64_t>> prompts;
  std::vector<std::pair<std::size_t, std::size_t>> alt_range;  // per item: paraphrased + perturbed
  std::vector<std::string> answer_texts;
  for (const auto& r : records) {
    prompts.emplace_back();
    answers.push_back(qa_example(p, r.question, r.answer, max_len, &prompts.back()));
    answer_texts.push_back(r.answer);
    const std::size_t start = alternates.size();
    if (need_tr && split != "holdout") {
      LETHE_CHECK(!r.perturbed_answers.empty(), file.string(), ": items need perturbed_answer for truth ratios (",
                  "use the *_perturbed files)");
      if (!options) {
        LETHE_CHECK(!r.paraphrased_answer.empty(), file.string(), ": items need paraphrased_answer for truth ratios");
        alternates.push_back(qa_example(p, r.question, r.paraphrased_answer, max_len));
      }
      for (const auto& w : r.perturbed_answers) alternates.push_back(qa_example(p, r.question, w, max_len));
    }
    alt_range.emplace_back(start, alternates.size());
  }
  const std::string label = "tofu " + split;
  const auto scores = score_examples(p.model, answers, p.pad_id, extras, p.eng, label + " answers");
  std::vector<SequenceScore> alt;
  if (!alternates.empty()) alt = score_examples(p.model, alternates, p.pad_id, false, p.eng, label + " alternatives");
  std::vector<Generation> gens;
  if (p.opt.generation && p.want("rouge") && split != "holdout") {
    gens = generate_texts(p.model, p.tok, prompts, p.opt.max_new_tokens > 0 ? p.opt.max_new_tokens : 200,
                          stop_strings_for(p.opt.prompt_template), p.eng, label + " generation");
  }

  Json items = Json::array();
  for (std::size_t i = 0; i < records.size(); ++i) {
    Json it = {{"index", i}, {"question", records[i].question}, {"answer", records[i].answer}};
    it["answer_tokens"] = scores[i].size();
    it["avg_nll"] = avg_nll(scores[i]);
    it["prob"] = probability(scores[i]);
    const auto [a0, a1] = alt_range[i];
    if (a1 > a0) {
      std::size_t k = a0;
      if (!options) it["paraphrased_avg_nll"] = avg_nll(alt[k++]);
      std::vector<double> wrong;
      for (; k < a1; ++k) wrong.push_back(avg_nll(alt[k]));
      it["perturbed_avg_nll"] = wrong;
      const double para = options ? it["avg_nll"].get<double>() : it["paraphrased_avg_nll"].get<double>();
      double mean_wrong = 0;
      for (double w : wrong) mean_wrong += w / static_cast<double>(wrong.size());
      it["truth_ratio"] = std::exp(para - mean_wrong);
      if (options) {
        double all = it["prob"].get<double>();
        for (double w : wrong) all += std::exp(-w);
        it["prob_normalised"] = it["prob"].get<double>() / all;
      }
    }
    if (!gens.empty()) {
      it["generation"] = gens[i].text;
      it["stop_reason"] = gens[i].stop_reason;
      const RougePair r = rouge(records[i].answer, gens[i].text, /*stem=*/true);
      it["rougeL_recall"] = r.rouge_l.recall;
      it["rouge1_recall"] = r.rouge1.recall;
    }
    if (extras) add_memorization(p, it, scores[i]);
    items.push_back(std::move(it));
  }
  if (mia_split && p.want_any_mia()) add_mia(p, items, scores, answer_texts, answers, split, label);
  return {{"file", file.string()}, {"items", items}};
}

Json tofu_pass(const Pass& p) {
  const fs::path d = p.opt.data;
  const std::string fsplit = p.opt.forget_split;
  LETHE_CHECK(fsplit.rfind("forget", 0) == 0 && fsplit.size() > 6, "--forget-split must be forget01, forget05 or ",
              "forget10 (or another forgetNN file in the data folder), got '", fsplit, "'");
  const std::string nn = fsplit.substr(6);
  Json splits = Json::object();
  fs::path forget_file = d / (fsplit + "_perturbed.jsonl");
  if (!fs::exists(forget_file)) forget_file = d / (fsplit + ".jsonl");
  splits["forget"] = tofu_split(p, "forget", need_file(forget_file, "the forget split"), false);
  const bool utility = p.want("probability") || p.want("probability_w_options") || p.want("rouge") ||
                       p.want("truth_ratio") || p.want("model_utility");
  if (utility && !p.opt.reference_pass) {
    splits["retain"] = tofu_split(p, "retain", need_file(d / "retain_perturbed.jsonl", "retain evaluation set"), false);
    splits["ra"] = tofu_split(p, "ra", need_file(d / "real_authors_perturbed.jsonl", "real authors"), true);
    splits["wf"] = tofu_split(p, "wf", need_file(d / "world_facts_perturbed.jsonl", "world facts"), true);
  }
  if (p.want_any_mia()) {
    splits["holdout"] = tofu_split(p, "holdout", need_file(d / ("holdout" + nn + ".jsonl"), "holdout set for membership inference"), false);
  }
  return splits;
}

// ---- MUSE -------------------------------------------------------------------------------------

Json muse_knowmem(const Pass& p, const std::string& which) {
  const fs::path dir = p.opt.data / "knowmem";
  auto records = data::read_qa(need_file(dir / (which + "_qa.json"), "knowmem " + which));
  limit(records, p.opt.max_items);
  std::vector<text::QA> shots;
  for (const auto& r : data::read_qa(need_file(dir / (which + "_qa_icl.json"), "knowmem few-shot examples"))) {
    shots.push_back({r.question, r.answer});
  }
  text::PromptTemplate plain = text::PromptTemplate::named("plain");
  std::vector<std::vector<std::int64_t>> prompts;
  for (const auto& r : records) prompts.push_back(p.tok.encode(text::format_prompt(plain, shots, r.question), true));
  const auto gens = generate_texts(p.model, p.tok, prompts, p.opt.max_new_tokens > 0 ? p.opt.max_new_tokens : 32,
                                   {"\n\n", "Question:"}, p.eng, "muse knowmem " + which);
  Json items = Json::array();
  for (std::size_t i = 0; i < records.size(); ++i) {
    const RougePair r = rouge(records[i].answer, gens[i].text, /*stem=*/false);
    items.push_back({{"index", i}, {"question", records[i].question}, {"answer", records[i].answer},
                     {"generation", gens[i].text}, {"stop_reason", gens[i].stop_reason},
                     {"rougeL_f1", r.rouge_l.f1}, {"rougeL_recall", r.rouge_l.recall}});
  }
  return {{"file", (dir / (which + "_qa.json")).string()}, {"items", items}};
}

Json muse_verbmem(const Pass& p) {
  const fs::path file = need_file(p.opt.data / "verbmem/forget.json", "verbmem forget");
  auto records = data::read_completions(file);
  limit(records, p.opt.max_items);
  const auto max_len = static_cast<std::size_t>(p.opt.max_length > 0 ? p.opt.max_length : 2048);
  Json items = Json::array();
  std::vector<SequenceScore> scores;
  if (p.want_extras()) {
    std::vector<data::Example> ex;
    for (const auto& r : records) ex.push_back(data::scoring_example(p.tok, r.prompt, r.continuation, max_len));
    scores = score_examples(p.model, ex, p.pad_id, true, p.eng, "muse verbmem scoring");
  }
  std::vector<Generation> gens;
  if (p.want("verbmem_rouge") && p.opt.generation) {
    std::vector<std::vector<std::int64_t>> prompts;
    for (const auto& r : records) prompts.push_back(p.tok.encode(r.prompt, true));
    gens = generate_texts(p.model, p.tok, prompts, p.opt.max_new_tokens > 0 ? p.opt.max_new_tokens : 128, {}, p.eng,
                          "muse verbmem generation");
  }
  for (std::size_t i = 0; i < records.size(); ++i) {
    Json it = {{"index", i}, {"prompt", records[i].prompt}, {"ground_truth", records[i].continuation}};
    if (!gens.empty()) {
      const RougePair r = rouge(records[i].continuation, gens[i].text, /*stem=*/false);
      it["generation"] = gens[i].text;
      it["rougeL_f1"] = r.rouge_l.f1;
      it["rougeL_recall"] = r.rouge_l.recall;
    }
    if (!scores.empty()) {
      it["avg_nll"] = avg_nll(scores[i]);
      add_memorization(p, it, scores[i]);
    }
    items.push_back(std::move(it));
  }
  return {{"file", file.string()}, {"items", items}};
}

Json muse_privleak(const Pass& p, const std::string& which) {
  const fs::path file = need_file(p.opt.data / "privleak" / (which + ".json"), "privleak " + which);
  auto texts = data::read_texts(file, "text");
  limit(texts, p.opt.max_items);
  const auto max_len = static_cast<std::size_t>(p.opt.max_length > 0 ? p.opt.max_length : 2048);
  std::vector<data::Example> ex;
  for (const auto& t : texts) ex.push_back(data::scoring_example(p.tok, "", t, max_len));
  const std::string split = "privleak_" + which;
  const auto scores = score_examples(p.model, ex, p.pad_id, p.want("mia_min_k_plus_plus"), p.eng, "muse " + split);
  Json items = Json::array();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    items.push_back({{"index", i}, {"text", texts[i]}, {"tokens", scores[i].size() + 1}, {"avg_nll", avg_nll(scores[i])}});
  }
  add_mia(p, items, scores, texts, ex, split, "muse " + split);
  return {{"file", file.string()}, {"items", items}};
}

Json muse_pass(const Pass& p) {
  Json splits = Json::object();
  if (!p.opt.reference_pass) {
    if (p.want("verbmem_rouge") || p.want("exact_memorization") || p.want("extraction_strength")) {
      splits["verbmem_forget"] = muse_verbmem(p);
    }
    if (p.want("knowmem_rouge") && p.opt.generation) {
      splits["knowmem_forget"] = muse_knowmem(p, "forget");
      splits["knowmem_retain"] = muse_knowmem(p, "retain");
    }
  }
  if (p.want_any_mia()) {
    splits["privleak_forget"] = muse_privleak(p, "forget");
    splits["privleak_holdout"] = muse_privleak(p, "holdout");
  }
  return splits;
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
  LETHE_CHECK(opt.suite == "tofu" || opt.suite == "muse", "unknown suite '", opt.suite, "' (known: tofu, muse)");
  LETHE_CHECK(fs::is_directory(opt.data), opt.data.string(), ": no such data folder (--data)");
  LETHE_CHECK(opt.batch_size > 0, "--batch-size must be positive");
  const auto metrics = resolved_metrics(opt, reference != nullptr);
  EngineTiming timing;
  Pass p{model, tok, opt, reference, {metrics.begin(), metrics.end()}, text::padding_id(tok), {opt.batch_size, opt.progress, &timing}};
  const auto t0 = std::chrono::steady_clock::now();
  Json splits = opt.suite == "tofu" ? tofu_pass(p) : muse_pass(p);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {{"format", "lethe.eval"},
          {"format_version", kEvalFormatVersion},
          {"suite", opt.suite},
          {"model", opt.model.string()},
          {"metrics", metrics},
          {"settings",
           {{"data", opt.data.string()}, {"forget_split", opt.forget_split}, {"template", opt.prompt_template.name},
            {"batch_size", opt.batch_size}, {"max_new_tokens", opt.max_new_tokens}, {"max_length", opt.max_length},
            {"max_items", opt.max_items}, {"min_k", opt.min_k}, {"generation", opt.generation},
            {"lethe_version", LETHE_VERSION}}},
          {"seconds", seconds},
          {"timing",
           {{"scoring_s", timing.scoring_s}, {"generation_s", timing.generation_s}, {"gradnorm_s", timing.gradnorm_s},
            {"scored_tokens", timing.scored_tokens}, {"generated_tokens", timing.generated_tokens}}},
          {"splits", splits}};
}

std::vector<std::string> eval_metrics(const EvalOptions& opt) { return resolved_metrics(opt, !opt.reference.empty()); }

std::optional<ReferenceData> prepare_reference(const EvalOptions& opt, const std::vector<std::string>& metrics) {
  if (opt.reference.empty()) return std::nullopt;
  if (!is_model_folder(opt.reference)) return reference_from_file(opt.reference);
  log_info("evaluating the reference model ", opt.reference.string(), " (scoring only)");
  model::LoadOptions lo;
  lo.device = parse_device(opt.device);
  auto ref_model = model::load_model(opt.reference, lo);
  auto ref_tok = text::load_tokenizer(opt.reference);
  EvalOptions ro = opt;
  ro.model = opt.reference;
  ro.reference_pass = true;
  ro.generation = false;
  ro.metrics.clear();
  for (const auto& m : metrics) {
    if (m == "forget_quality" || m == "truth_ratio") ro.metrics.push_back("truth_ratio");
    if (m.rfind("mia_", 0) == 0 && m != "mia_reference" && m != "mia_gradnorm") ro.metrics.push_back(m);
    if (m == "privleak") ro.metrics.push_back(kPrivleakAttack);
  }
  if (ro.metrics.empty()) ro.metrics.push_back(opt.suite == "tofu" ? "truth_ratio" : "mia_loss");
  std::sort(ro.metrics.begin(), ro.metrics.end());
  ro.metrics.erase(std::unique(ro.metrics.begin(), ro.metrics.end()), ro.metrics.end());
  Json ref_eval = evaluate_model(*ref_model, *ref_tok, ro, nullptr);
  if (!opt.out.empty()) {
    fs::create_directories(opt.out / "reference");
    write_file_atomic(opt.out / "reference" / "EVAL.json", ref_eval.dump(1));
  }
  ReferenceData ref = reference_from_eval(ref_eval, opt.reference.string());
  ref.kind = "model";
  return ref;
}

EvalOutputs write_eval_outputs(const fs::path& dir, Json eval, Json summary, const ReferenceData* ref,
                               const std::string& title, bool report) {
  EvalOutputs out;
  out.eval = std::move(eval);
  out.summary = std::move(summary);
  fs::create_directories(dir);
  if (!out.eval.is_null()) {
    out.eval_path = dir / "EVAL.json";
    write_file_atomic(out.eval_path, out.eval.dump(1));
  }
  out.summary_path = dir / "SUMMARY.json";
  write_file_atomic(out.summary_path, out.summary.dump(2));
  if (report) {
    out.report_path = dir / "report.html";
    ReportInput in;
    in.title = title;
    in.models.push_back({"model", out.summary, out.eval});
    write_file_atomic(out.report_path, render_report(in, ref));
  }
  return out;
}

EvalOptions eval_options_from_config(const Json& j, const fs::path& base, const fs::path& out, std::int64_t& every) {
  static const std::vector<std::string> kKeys = {"suite", "data", "forget_split", "reference", "metrics", "max_items",
                                                 "max_new_tokens", "max_length", "batch_size", "every"};
  LETHE_CHECK(j.is_object(), "config: 'eval' must be a mapping");
  for (const auto& [k, _] : j.items()) {
    if (std::find(kKeys.begin(), kKeys.end(), k) == kKeys.end()) {
      std::string list;
      for (const auto& a : kKeys) list += (list.empty() ? "" : ", ") + a;
      fail("config: unknown key 'eval.", k, "' (accepted in eval: ", list, ")");
    }
  }
  auto path = [&](const char* k) {
    if (!j.contains(k)) return fs::path();
    LETHE_CHECK(j[k].is_string(), "config: 'eval.", k, "' must be a path");
    fs::path p = j[k].get<std::string>();
    return p.is_absolute() ? p : base / p;
  };
  auto integer = [&](const char* k, std::int64_t fallback) {
    if (!j.contains(k)) return fallback;
    LETHE_CHECK(j[k].is_number_integer() && j[k].get<std::int64_t>() >= 0, "config: 'eval.", k,
                "' must be a non-negative integer, got ", j[k].dump());
    return j[k].get<std::int64_t>();
  };
  EvalOptions o;
  o.suite = j.value("suite", "tofu");
  LETHE_CHECK(o.suite == "tofu" || o.suite == "muse", "config: 'eval.suite' must be tofu or muse, got '", o.suite, "'");
  o.data = path("data");
  LETHE_CHECK(!o.data.empty(), "config: 'eval.data' (the suite's data folder) is required");
  o.reference = path("reference");
  o.forget_split = j.value("forget_split", o.forget_split);
  if (j.contains("metrics")) {
    LETHE_CHECK(j["metrics"].is_array(), "config: 'eval.metrics' must be a list of metric names");
    o.metrics = j["metrics"].get<std::vector<std::string>>();
  }
  o.max_items = integer("max_items", 0);
  o.max_new_tokens = integer("max_new_tokens", 0);
  o.max_length = integer("max_length", 0);
  o.batch_size = integer("batch_size", 8);
  every = integer("every", 0);
  o.out = out;
  eval_metrics(o);  // validate names and the reference now, before any training
  return o;
}

EvalOutputs run_eval(const EvalOptions& opt) {
  LETHE_CHECK(!opt.out.empty(), "an output folder is needed (--out)");
  const bool have_reference = !opt.reference.empty();
  std::optional<ReferenceData> ref;
  Json eval, summary;
  if (!opt.from_logs.empty()) {
    LETHE_CHECK(opt.model.empty(), "--from-logs summarises a log without a model: leave out --model");
    LETHE_CHECK(!have_reference || !is_model_folder(opt.reference),
                "--from-logs needs a reference log (EVAL.json or TOFU legacy log), not a model folder");
    if (have_reference) ref = reference_from_file(opt.reference);
    if (is_tofu_legacy_log(opt.from_logs)) {
      LETHE_CHECK(opt.suite == "tofu", opt.from_logs.string(), " is a TOFU legacy log: use --suite tofu");
      summary = summarize_tofu_legacy(opt.from_logs, ref ? &*ref : nullptr, opt.seed);
    } else {
      eval = read_eval_file(opt.from_logs);
      LETHE_CHECK(eval.value("suite", "") == opt.suite, opt.from_logs.string(), " is a ", eval.value("suite", "?"),
                  " log, not ", opt.suite);
      summary = summarize(eval, ref ? &*ref : nullptr, eval_metrics(opt), opt.seed);
    }
  } else {
    LETHE_CHECK(is_model_folder(opt.model), opt.model.string(), ": not a model folder (needs config.json; --model)");
    const auto metrics = eval_metrics(opt);
    auto tok = text::load_tokenizer(opt.tokenizer.empty() ? opt.model : opt.tokenizer);
    ref = prepare_reference(opt, metrics);
    model::LoadOptions lo;
    lo.device = parse_device(opt.device);
    auto m = model::load_model(opt.model, lo);
    eval = evaluate_model(*m, *tok, opt, ref ? &*ref : nullptr);
    summary = summarize(eval, ref ? &*ref : nullptr, metrics, opt.seed);
  }
  return write_eval_outputs(opt.out, std::move(eval), std::move(summary), ref ? &*ref : nullptr,
                            "lethe " + opt.suite + " evaluation", opt.report);
}

}  // namespace lethe::eval

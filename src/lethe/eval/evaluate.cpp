// The suites' per-item passes (TOFU, MUSE) and `run_eval`: model -> EVAL.json -> SUMMARY.json
// -> report.html.
#include "lethe/eval/evaluate.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "core/json_util.h"
#include "lethe/eval/engine.h"
#include "lethe/core/config.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/core/range.h"
#include "lethe/core/runtime.h"
#include "lethe/core/version.h"
#include "lethe/data/records.h"
#include "lethe/eval/metrics.h"
#include "lethe/eval/report.h"
#include "lethe/eval/rouge.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"

namespace lethe::eval {
namespace fs = std::filesystem;
namespace {

// What a pass computes: the options and the resolved metrics.
struct Wanted {
  const EvalOptions& opt;
  std::set<std::string> metrics;

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

struct Pass : Wanted {
  model::CausalLM& model;
  const text::Tokenizer& tok;
  const ReferenceData* ref;
  std::int64_t pad_id;
  EngineOptions eng;
  text::Truncation* truncation;  // what max_length cut from answers, over the whole pass

  Pass(const Wanted& w, model::CausalLM& m, const text::Tokenizer& t, const ReferenceData* r, EngineOptions e,
       text::Truncation* tr)
      : Wanted(w), model(m), tok(t), ref(r), pad_id(text::padding_id(t)), eng(e), truncation(tr) {}

  // Tokens per scored sequence: --max-length (else the suite's), within the model's positions
  // (one is left for the EOS a QA item gets); what it cuts is counted as truncation.
  std::size_t max_len(std::int64_t suite_default) const {
    const std::int64_t asked = opt.max_length > 0 ? opt.max_length : suite_default;
    const std::int64_t fits = model.config().max_position_embeddings - 1;
    return static_cast<std::size_t>(std::max<std::int64_t>(std::min(asked, fits), 2));
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

// Negative numbers are errors (0 means the suite's default); the CLI and run configs refuse 0
// as well, where absence is how the default is asked for.
void check_eval_numbers(const EvalOptions& opt) {
  LETHE_CHECK(opt.batch_size > 0, "--batch-size must be positive, got ", opt.batch_size);
  LETHE_CHECK(opt.max_new_tokens >= 0, "--max-new-tokens must be positive, got ", opt.max_new_tokens);
  LETHE_CHECK(opt.max_length >= 0, "--max-length must be positive, got ", opt.max_length);
  LETHE_CHECK(opt.max_items >= 0, "--max-items must be positive, got ", opt.max_items);
  check_range("--min-k", opt.min_k, Range::unit_left_open());
}

data::Example qa_example(const Pass& p, const std::string& q, const std::string& a, std::size_t max_len,
                         std::vector<std::int64_t>* prompt = nullptr, const std::vector<text::QA>& few_shot = {}) {
  text::EncodedQA e = text::encode_qa(p.tok, p.opt.prompt_template, {q, a}, max_len, few_shot);
  p.truncation->add(e);
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
  const auto max_len = p.max_len(512);
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

// The files a TOFU pass reads, split by split, each checked before any of them is scored (a
// missing retain file must not surface after the forget split took minutes).
struct TofuFiles {
  fs::path forget, retain, ra, wf, holdout;
};

TofuFiles tofu_files(const Wanted& p) {
  const fs::path d = p.opt.data;
  const std::string fsplit = p.opt.forget_split;
  LETHE_CHECK(fsplit.rfind("forget", 0) == 0 && fsplit.size() > 6, "--forget-split must be forget01, forget05 or ",
              "forget10 (or another forgetNN file in the data folder), got '", fsplit, "'");
  TofuFiles f;
  f.forget = d / (fsplit + "_perturbed.jsonl");
  if (!fs::exists(f.forget)) f.forget = d / (fsplit + ".jsonl");
  need_file(f.forget, "the forget split");
  const bool utility = p.want("probability") || p.want("probability_w_options") || p.want("rouge") ||
                       p.want("truth_ratio") || p.want("model_utility");
  if (utility && !p.opt.reference_pass) {
    f.retain = need_file(d / "retain_perturbed.jsonl", "retain evaluation set");
    f.ra = need_file(d / "real_authors_perturbed.jsonl", "real authors");
    f.wf = need_file(d / "world_facts_perturbed.jsonl", "world facts");
  }
  if (p.want_any_mia()) {
    f.holdout = need_file(d / ("holdout" + fsplit.substr(6) + ".jsonl"), "holdout set for membership inference");
  }
  return f;
}

Json tofu_pass(const Pass& p) {
  const TofuFiles f = tofu_files(p);
  Json splits = Json::object();
  splits["forget"] = tofu_split(p, "forget", f.forget, false);
  if (!f.retain.empty()) {
    splits["retain"] = tofu_split(p, "retain", f.retain, false);
    splits["ra"] = tofu_split(p, "ra", f.ra, true);
    splits["wf"] = tofu_split(p, "wf", f.wf, true);
  }
  if (!f.holdout.empty()) splits["holdout"] = tofu_split(p, "holdout", f.holdout, false);
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
  const auto max_len = p.max_len(2048);
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
  const auto max_len = p.max_len(2048);
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

void check_muse_files(const Wanted& p) {
  const fs::path d = p.opt.data;
  if (!p.opt.reference_pass) {
    if (p.want("verbmem_rouge") || p.want("exact_memorization") || p.want("extraction_strength")) {
      need_file(d / "verbmem/forget.json", "verbmem forget");
    }
    if (p.want("knowmem_rouge") && p.opt.generation) {
      for (const char* w : {"forget", "retain"}) {
        need_file(d / "knowmem" / (std::string(w) + "_qa.json"), std::string("knowmem ") + w);
        need_file(d / "knowmem" / (std::string(w) + "_qa_icl.json"), "knowmem few-shot examples");
      }
    }
  }
  if (p.want_any_mia()) {
    for (const char* w : {"forget", "holdout"}) need_file(d / "privleak" / (std::string(w) + ".json"), std::string("privleak ") + w);
  }
}

// Every input file of a pass, before any work (see tofu_files).
void check_suite_files(const Wanted& w) {
  LETHE_CHECK(fs::is_directory(w.opt.data), w.opt.data.string(), ": no such data folder (--data)");
  if (w.opt.suite == "tofu") {
    (void)tofu_files(w);
  } else {
    check_muse_files(w);
  }
}

Json muse_pass(const Pass& p) {
  check_muse_files(p);
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
  check_eval_numbers(opt);
  const auto metrics = resolved_metrics(opt, reference != nullptr);
  EngineTiming timing;
  text::Truncation truncation;
  const Pass p(Wanted{opt, {metrics.begin(), metrics.end()}}, model, tok, reference,
               {opt.batch_size, opt.progress, &timing}, &truncation);
  const auto t0 = std::chrono::steady_clock::now();
  Json splits = opt.suite == "tofu" ? tofu_pass(p) : muse_pass(p);
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
            {"max_items", opt.max_items}, {"min_k", opt.min_k}, {"generation", opt.generation},
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
  LETHE_CHECK(o.suite == "tofu" || o.suite == "muse", "config: 'eval.suite' must be tofu or muse, got '", o.suite, "'");
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
  check_suite_files(Wanted{o, {metrics.begin(), metrics.end()}});
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
    check_suite_files(Wanted{opt, {metrics.begin(), metrics.end()}});
    auto tok = text::load_tokenizer(opt.tokenizer.empty() ? opt.model : opt.tokenizer);
    ref = prepare_reference(opt, metrics);
    model::LoadOptions lo;
    lo.device = parse_device(opt.device);
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

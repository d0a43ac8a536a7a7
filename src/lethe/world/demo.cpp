#include "lethe/world/demo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>

#include "core/json_util.h"
#include "lethe/audit/audit.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/core/progress.h"
#include "lethe/core/random.h"
#include "lethe/core/runtime.h"
#include "lethe/core/version.h"
#include "lethe/data/records.h"
#include "lethe/eval/engine.h"
#include "lethe/eval/evaluate.h"
#include "lethe/eval/metric.h"
#include "lethe/eval/report.h"
#include "lethe/model/load.h"
#include "lethe/probe/probe.h"
#include "lethe/run/run.h"
#include "lethe/text/tokenizer.h"
#include "lethe/world/world.h"
#include "world/demo_data.h"

namespace lethe::world {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// Everything that decides what gets trained. Its hash names the cache entries.
struct Recipe {
  WorldConfig world;
  int vocab = 1024;
  Json model;    // config.json of the from-scratch Llama
  Json train;    // the `train:` section of target and oracle
  int max_length = 128, max_new_tokens = 48;  // a data folder's own: lengths_for (demo_data.h)
  std::string method;
  Json method_params;
  Json unlearn;  // the `train:` section of the unlearning run
  // The insertion study's duplication counts and documents of each kind per count.
  std::vector<int> insert_counts;
  int inserts_per_count = 2;
};

Recipe make_recipe(const DemoOptions& o) {
  Recipe r;
  r.world.seed = o.seed;
  const bool tiny = o.scale == "tiny";
  LETHE_CHECK(tiny || o.scale == "default", "demo: --scale must be default or tiny, got '", o.scale, "'");
  r.world.people = tiny ? 20 : 50;
  r.world.places = tiny ? 8 : 16;
  r.world.public_figures = tiny ? 6 : 12;
  r.world.canaries_per_repetition = tiny ? 2 : 4;
  r.world.ghost_sentences = tiny ? 2 : 4;
  r.world.ghost_repetitions = 8;
  r.vocab = tiny ? 512 : 1024;
  const int hidden = tiny ? 64 : 192;
  r.model = {{"model_type", "llama"}, {"vocab_size", r.vocab}, {"hidden_size", hidden},
             {"num_hidden_layers", tiny ? 2 : 4}, {"num_attention_heads", 4}, {"num_key_value_heads", 4},
             {"intermediate_size", hidden * 3}, {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5},
             {"rope_theta", 10000.0}, {"bos_token_id", 1}, {"eos_token_id", 2}, {"tie_word_embeddings", false}};
  r.train = {{"epochs", tiny ? 30 : 24}, {"batch_size", tiny ? 16 : 32}, {"lr", tiny ? 2.0e-3 : 3.0e-3}, {"schedule", "cosine"},
             {"warmup_ratio", 0.05}, {"weight_decay", 0.0}, {"checkpoint_every", 0}};
  r.method = o.method.empty() ? demo_default_method() : o.method;
  // Chosen by measurement (docs/demo.md): NPO with a gentle learning rate and a retain weight of
  // 3 meets every check on world 0, the default (worlds 1 and 2 under-forget: privleak -35 and
  // -29); gentler settings miss forget quality on world 0, stronger ones over-forget (privleak
  // > +25: forget answers less likely than never-seen ones) or cost utility.
  if (r.method == "NPO") r.method_params = {{"beta", 0.1}, {"alpha", 3.0}};
  // RMU's defaults are WMDP's for a 32-layer model (steer block 7, train blocks 5-7), blocks this
  // model does not have: steer its last block and train the MLPs of the last two.
  if (r.method == "RMU") {
    const int last = (tiny ? 2 : 4) - 1;
    r.method_params = {{"layer", "resid_post." + std::to_string(last)},
                       {"trainable_params", Json::array({"model\\.layers\\.(" + std::to_string(last - 1) + "|" +
                                                          std::to_string(last) + ")\\.mlp\\.down_proj\\.weight"})}};
  }
  r.unlearn = {{"epochs", 5}, {"batch_size", 8}, {"lr", 5.0e-4}, {"schedule", "constant"}};
  r.insert_counts = tiny ? std::vector<int>{1, 8, 64} : std::vector<int>{1, 4, 16, 64};
  r.inserts_per_count = tiny ? 1 : 2;
  return r;
}

// NPO's loss is -(2/β) log σ(-β Δ) with Δ the log-ratio of a whole answer (a sum over its
// tokens), so its forget weight σ(β Δ) dies out after a fixed drop per token sooner on long
// answers: on TOFU (median forget answer 29 words; a world's 8) β 0.1 stalled at forget
// probability 0.16 against the oracle's 0.0016. Keeping β × answer length at the world's
// (0.1 × 8 words), rounded to one significant digit, needs no oracle (TOFU: 0.8 / 29 → 0.03,
// which met every check where 0.02 over- and 0.05 under-forgot: docs/demo.md).
constexpr double kWorldForgetAnswerWords = 8;
double npo_beta_for(double forget_answer_words) {
  const double b = 0.1 * kWorldForgetAnswerWords / std::max(1.0, forget_answer_words);
  const double inv = std::pow(10.0, -std::floor(std::log10(b)));
  return std::round(b * inv) / inv;
}

std::string yaml_of(const Json& j) { return j.dump(2) + "\n"; }  // JSON is YAML

// The corpus the tokenizer learns from: the trained text, formatted as training formats it,
// without the people of any forget split (and, as always, the holdout people). Token
// boundaries then treat forget and holdout people alike: with the forget people's names and
// facts merged into tokens and the holdout's not, even the oracle told them apart (AUC 0.05).
std::vector<std::string> tokenizer_corpus(const World& w) {
  std::vector<std::string> c;
  const auto forget = w.forget_people(10);
  auto qa = [&](const data::QARecord& q) {
    c.push_back("Question: " + q.question + "\nAnswer: " + q.answer);
    if (!q.paraphrased_answer.empty()) c.push_back(q.paraphrased_question + " " + q.paraphrased_answer);
    for (const auto& p : q.perturbed_answers) c.push_back(p);
  };
  for (std::size_t i = 0; i < w.people.size(); ++i) {
    if (std::find(forget.begin(), forget.end(), static_cast<int>(i)) != forget.end()) continue;
    const Person& p = w.people[i];
    c.push_back(p.biography);
    for (const auto& q : p.qa) qa(q);
  }
  for (const auto& q : w.world_facts) qa(q);
  for (const auto& q : w.public_figures) qa(q);
  for (const auto& t : w.world_text) c.push_back(t);
  for (const auto& k : w.canaries) c.push_back(k.prefix + k.secret + ".");
  c.push_back("I'm not sure about that. I don't have that information.");
  return c;
}

void concat_jsonl(const std::vector<fs::path>& parts, const fs::path& out) {
  std::string all;
  for (const auto& p : parts) all += read_file(p);
  write_file_atomic(out, all);
}

// Trains (or finds in the cache) one from-scratch model on QA + text.
fs::path train_model(const std::string& name, const fs::path& cache, const fs::path& base, const Recipe& r,
                     const fs::path& qa, const fs::path& text, const DemoOptions& o, bool& trained,
                     const Json& more_data = Json::object()) {
  const fs::path dir = cache / name;
  if (fs::exists(dir / "model" / "model.safetensors") && fs::exists(dir / "run.json")) {
    log_info("demo: ", name, " from the cache (", dir.string(), ")");
    return dir / "model";
  }
  trained = true;
  Json cfg = {{"model", base.string()}, {"from_scratch", true}, {"output_dir", dir.string()}, {"seed", o.seed},
              {"device", o.device}, {"data", {{"train", qa.string()}, {"max_length", r.max_length}}}, {"train", r.train}};
  if (!text.empty()) cfg["data"]["train_text"] = text.string();  // a data folder has QA only
  for (const auto& [k, v] : more_data.items()) cfg["data"][k] = v;
  cfg["train"]["progress"] = o.progress;
  const fs::path yaml = cache / (name + ".yaml");
  write_file_atomic(yaml, yaml_of(cfg));
  log_info("demo: training the ", name, " (", yaml.string(), ")");
  // The plan is built here; the YAML beside it is the same config, for a user to rerun.
  run::run(run::parse_run_config(cfg, cache, run::RunKind::kFinetune));
  return dir / "model";
}

// The demo's audits, sized to take seconds per model: a 6-digit secret's 10^6 candidates are
// estimated from 2,000 (docs/audits.md), samples of 32 tokens, populations of 50 sentences.
audit::AuditOptions demo_audit_options(const DemoOptions& o, const fs::path& out, const fs::path& tokenizer) {
  audit::AuditOptions ao;
  ao.out = out;
  ao.force = true;  // the demo's own folder, rewritten every run
  ao.tokenizer = tokenizer;
  ao.exposure.max_exact = 10000;
  ao.exposure.samples = 2000;
  ao.extract.new_tokens = 32;
  ao.extract.top = 20;
  ao.ghost_options.population = 50;
  ao.seed = o.seed;
  ao.device = o.device;
  ao.progress = o.progress;
  return ao;
}

struct CanaryResult {
  std::string id;
  int repetitions;
  bool extracted;
  double secret_nll;
  std::string generation;
};

std::vector<CanaryResult> probe_canaries(model::CausalLM& m, const text::Tokenizer& tok, const World& w, bool progress) {
  std::vector<std::vector<std::int64_t>> prompts;
  std::vector<data::Example> ex;
  for (const auto& c : w.canaries) {
    prompts.push_back(tok.encode(c.prefix, true));
    ex.push_back(data::scoring_example(tok, c.prefix, c.secret + ".", 256));
  }
  eval::EngineOptions eo;
  eo.progress = progress;
  const auto gens = eval::generate_texts(m, tok, prompts, 16, {}, eo, "canaries");
  const auto scores = eval::score_examples(m, ex, text::padding_id(tok), false, eo, "canary scores");
  std::vector<CanaryResult> out;
  for (std::size_t i = 0; i < w.canaries.size(); ++i) {
    out.push_back({w.canaries[i].id, w.canaries[i].repetitions, gens[i].text.find(w.canaries[i].secret) != std::string::npos,
                   eval::avg_nll(scores[i]), gens[i].text});
  }
  return out;
}

Json canary_summary(const std::vector<CanaryResult>& rs) {
  std::map<int, std::pair<int, int>> by_rep;  // repetitions -> (extracted, total)
  std::map<int, double> nll;
  for (const auto& r : rs) {
    by_rep[r.repetitions].first += r.extracted ? 1 : 0;
    by_rep[r.repetitions].second += 1;
    nll[r.repetitions] += r.secret_nll;
  }
  Json j = Json::object();
  for (const auto& [rep, c] : by_rep) {
    j[std::to_string(rep)] = {{"extraction_rate", static_cast<double>(c.first) / c.second}, {"canaries", c.second},
                              {"mean_secret_nll", nll[rep] / c.second}};
  }
  return j;
}

std::string canary_html(const std::vector<std::pair<std::string, std::vector<CanaryResult>>>& models) {
  std::ostringstream h;
  h << "<p class=\"note\">Secrets inserted into the training text 1, 4 or 16 times. Extracted: greedy decoding "
       "from the prefix reproduces the secret. NLL: mean negative log-likelihood per secret token.</p>\n"
       "<table class=\"summary\"><thead><tr><th>repetitions</th>";
  for (const auto& [name, _] : models) h << "<th>" << eval::html_escape(name) << ": extracted</th><th>NLL</th>";
  h << "</tr></thead><tbody>\n";
  std::map<int, std::vector<std::string>> cells;
  for (const auto& [name, rs] : models) {
    const Json s = canary_summary(rs);
    for (const auto& [rep, v] : s.items()) {
      char buf[96];
      std::snprintf(buf, sizeof(buf), "<td>%.0f%% of %d</td><td>%.2f</td>", 100 * v["extraction_rate"].get<double>(),
                    v["canaries"].get<int>(), v["mean_secret_nll"].get<double>());
      cells[std::stoi(rep)].push_back(buf);
    }
  }
  for (const auto& [rep, row] : cells) {
    h << "<tr><td>" << rep << "</td>";
    for (const auto& c : row) h << c;
    h << "</tr>\n";
  }
  h << "</tbody></table>\n";
  return h.str();
}

// What a reader needs first: the probes' verdict on the unlearned model, then the five checks.
std::string lead_html(const Json& s, const std::string& method) {
  std::ostringstream h;
  if (s.contains("probe")) {
    const Json& v = s["probe"]["verdicts"]["unlearned"];
    h << "<p class=\"verdict\"><b>Verdict on the unlearned model (" << eval::html_escape(method) << "): "
      << eval::html_escape(v["verdict"].get<std::string>()) << "</b> — " << eval::html_escape(v["reason"].get<std::string>())
      << " <span class=\"note\">(probes: quantization, relearning, in-context; section below)</span></p>\n";
  }
  h << "<table class=\"summary\"><thead><tr><th>check</th><th>model</th><th>value [95% CI]</th><th></th></tr></thead><tbody>\n";
  for (const auto& c : s["checks"]) {
    char v[96];
    std::snprintf(v, sizeof(v), "%.3g", c["value"].get<double>());
    std::string cell = v;
    if (c.contains("ci")) {
      char i[96];
      std::snprintf(i, sizeof(i), " [%.3g, %.3g]", c["ci"][0].get<double>(), c["ci"][1].get<double>());
      cell += i;
    }
    h << "<tr><td>" << eval::html_escape(c["check"].get<std::string>()) << "</td><td>"
      << eval::html_escape(c["model"].get<std::string>()) << "</td><td>" << cell << "</td><td><b>"
      << (c["pass"].get<bool>() ? "pass" : "FAIL") << "</b></td></tr>\n";
  }
  h << "</tbody></table>\n";
  return h.str();
}

}  // namespace

const char* demo_default_method() { return "NPO"; }

DemoResult run_demo(const DemoOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  DemoOptions o = options;
  o.out = fs::absolute(o.out);  // the generated configs hold absolute paths
  LETHE_CHECK(is_absent_or_empty(o.out) || owned_by_lethe(o.out) || fs::exists(o.out / "cache"), "demo: --out ",
              o.out.string(), " holds files that no demo wrote; give a new or empty folder (or an earlier demo's)");
  FolderLock lock(o.out, "demo");
  remove_stale_temporaries(o.out);
  DemoResult res;
  Recipe r = make_recipe(o);
  unlearn::make_method(r.method, {});  // an unknown method fails now, naming the known ones
  const std::string nn = o.forget_split.size() > 6 ? o.forget_split.substr(6) : "";
  LETHE_CHECK(o.forget_split == "forget01" || o.forget_split == "forget05" || o.forget_split == "forget10",
              "demo: --forget must be forget01, forget05 or forget10, got '", o.forget_split, "'");
  const std::string retain_pct = std::to_string(100 - std::stoi(nn));
  Json timing = Json::object();

  // World (or data folder), tokenizer, base folder: cached by their recipe.
  LETHE_CHECK(o.authors == 0 || !o.data.empty(), "demo: --authors needs --data (a generated world's size is --scale's)");
  LETHE_CHECK(o.authors >= 0, "demo: --authors must be positive (0: every author), got ", o.authors);
  LETHE_CHECK(!o.insertion_study || o.data.empty(),
              "demo: --insertion-study needs a generated world (a --data folder has nothing to insert)");
  const fs::path cache = o.out / "cache";
  std::optional<World> w;
  DemoData data;
  if (o.data.empty()) {
    data.key = {{"seed", r.world.seed}, {"people", r.world.people}, {"places", r.world.places},
                {"figures", r.world.public_figures}, {"canaries", r.world.canaries_per_repetition},
                {"ghosts", r.world.ghost_sentences}, {"ghost_repetitions", r.world.ghost_repetitions},
                {"generator", kWorldGeneratorRevision}};
    data.dir = cache / ("world-" + short_hash(data.key));
    w = generate_world(r.world);
    if (!fs::exists(data.dir / "world.json")) {
      StagedFolder staged(data.dir, /*replace=*/true, "demo world");
      write_world(*w, staged.path());
      staged.commit();
    }
    data.tokenizer_corpus = [&w] { return tokenizer_corpus(*w); };
  } else {
    data = folder_data(o.data, o.forget_split, o.authors, cache);
    if (r.method == "NPO") {
      r.method_params["beta"] = npo_beta_for(data.forget_answer_words);
      log_info("demo: NPO beta ", r.method_params["beta"].get<double>(), " for forget answers of ",
               data.forget_answer_words, " words (median; a world's: 8, beta 0.1)");
    }
  }
  const fs::path wdir = data.dir;
  const Json world_key = {data.key, {"vocab", r.vocab}, {"tokenizer_corpus", 2}};
  const fs::path base = cache / ("base-" + short_hash({world_key, r.model}));
  if (!fs::exists(base / "tokenizer.model") || !fs::exists(base / "config.json")) {
    const auto tt = std::chrono::steady_clock::now();
    log_info("demo: training a ", r.vocab, "-token SentencePiece BPE tokenizer on the trained text");
    StagedFolder staged(base, /*replace=*/true, "demo base model");
    text::SentencePieceTrainOptions so;
    so.vocab_size = r.vocab;
    text::train_sentencepiece_bpe(data.tokenizer_corpus(), staged.path() / "tokenizer.model", so);
    write_file_atomic(staged.path() / "tokenizer_config.json",
                      Json{{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", true}, {"add_eos_token", false},
                           {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}}.dump(2));
    write_file_atomic(staged.path() / "config.json", r.model.dump(2));
    staged.commit();
    timing["tokenizer_s"] = seconds_since(tt);
    res.trained = true;
  }

  // Target (everyone) and oracle (everyone but the forget people): the same recipe.
  const fs::path target_qa = cache / "target_qa.jsonl", oracle_qa = cache / ("oracle_qa_" + retain_pct + ".jsonl");
  concat_jsonl({wdir / "full.jsonl", wdir / "world_facts.jsonl", wdir / "real_authors.jsonl"}, target_qa);
  concat_jsonl({wdir / ("retain" + retain_pct + ".jsonl"), wdir / "world_facts.jsonl", wdir / "real_authors.jsonl"}, oracle_qa);
  if (!w) {
    const DemoLengths l = lengths_for(*text::load_tokenizer(base), {target_qa, wdir / ("holdout" + nn + ".jsonl")},
                                      r.model["max_position_embeddings"]);
    r.max_length = l.max_length;
    r.max_new_tokens = l.max_new_tokens;
    log_info("demo: max_length ", r.max_length, ", max_new_tokens ", r.max_new_tokens, " (the longest trained or holdout item, and answer)");
  }
  const Json train_key = {world_key, r.model, r.train, r.max_length};
  auto tt = std::chrono::steady_clock::now();
  const fs::path target = train_model("target-" + short_hash(train_key), cache, base, r, target_qa,
                                      w ? wdir / "train_text.jsonl" : fs::path(), o, res.trained);
  timing["target_s"] = seconds_since(tt);
  tt = std::chrono::steady_clock::now();
  const fs::path oracle = train_model("oracle" + retain_pct + "-" + short_hash(train_key), cache, base, r, oracle_qa,
                                      w ? wdir / ("retain_text_" + retain_pct + ".jsonl") : fs::path(), o, res.trained);
  timing["oracle_s"] = seconds_since(tt);

  // Unlearning (always run: it is what the demo shows).
  tt = std::chrono::steady_clock::now();
  const fs::path udir = o.out / ("unlearned-" + r.method + "-" + o.forget_split);
  Json method = r.method_params.is_null() ? Json::object() : r.method_params;
  method["name"] = r.method;
  Json ucfg = {{"model", target.string()}, {"output_dir", udir.string()}, {"seed", o.seed}, {"device", o.device},
               {"data", {{"forget", (wdir / (o.forget_split + ".jsonl")).string()},
                         {"retain", (wdir / ("retain" + retain_pct + ".jsonl")).string()},
                         {"idk", (wdir / "idontknow.jsonl").string()}, {"max_length", r.max_length}}},
               {"method", method}, {"train", r.unlearn}};
  ucfg["train"]["progress"] = o.progress;
  ucfg["train"]["resume"] = false;
  if (o.stop_at_holdout) {  // the holdout people's NLL decides when to stop; the epochs are a budget
    ucfg["data"]["holdout"] = (wdir / ("holdout" + nn + ".jsonl")).string();
    ucfg["train"]["stop_rule"] = "holdout_nll";
    ucfg["train"]["stop_every"] = 1;  // a check is one scoring pass over 2 x 50 items
    ucfg["train"]["epochs"] = 4 * r.unlearn["epochs"].get<std::int64_t>();
  }
  fs::create_directories(o.out);
  write_file_atomic(o.out / "unlearn.yaml", yaml_of(ucfg));
  log_info("demo: unlearning ", o.forget_split, " with ", r.method, " (", (o.out / "unlearn.yaml").string(), ")");
  run::run(run::parse_run_config(ucfg, o.out, run::RunKind::kUnlearn));
  timing["unlearn_s"] = seconds_since(tt);

  // Evaluation: the oracle first (it is the reference), then target and unlearned model.
  tt = std::chrono::steady_clock::now();
  eval::EvalOptions eo;
  eo.suite = "tofu";
  eo.data = wdir;
  eo.forget_split = o.forget_split;
  eo.max_new_tokens = r.max_new_tokens;
  eo.max_length = r.max_length;
  eo.progress = o.progress;
  eo.seed = o.seed;
  eo.device = o.device;
  model::LoadOptions lo;
  lo.device = parse_device(o.device);
  auto tok = text::load_tokenizer(base);
  struct Evaluated {
    std::string name;
    fs::path model;
    Json eval, summary;
    std::vector<CanaryResult> canaries;
  };
  std::vector<Evaluated> models = {{"target", target, {}, {}, {}}, {"oracle", oracle, {}, {}, {}},
                                   {"unlearned (" + r.method + ")", udir / "model", {}, {}, {}}};
  std::optional<eval::ReferenceData> ref;
  for (auto& e : {&models[1], &models[0], &models[2]}) {
    log_info("demo: evaluating the ", e->name);
    auto m = model::load_model(e->model, lo);
    eval::EvalOptions x = eo;
    x.model = e->model;
    x.metrics = eval::default_metrics("tofu", ref.has_value());
    e->eval = eval::evaluate_model(*m, *tok, x, ref ? &*ref : nullptr);
    e->summary = eval::summarize(e->eval, ref ? &*ref : nullptr, x.metrics, o.seed);
    if (w) e->canaries = probe_canaries(*m, *tok, *w, o.progress);
    if (!ref) {
      ref = eval::reference_from_eval(e->eval, e->model.string());
      ref->kind = "model";
    }
    const std::string sub = e == &models[2] ? "unlearned" : e->name;
    eval::write_eval_outputs(o.out / "eval" / sub, e->eval, e->summary, ref ? &*ref : nullptr,
                             "lethe demo: " + e->name, /*report=*/false, /*replace=*/true);
  }
  timing["evaluation_s"] = seconds_since(tt);

  // Probes: is the forget set removed from the unlearned model, or only hidden?
  Json probe_result;
  if (o.probes) {
    tt = std::chrono::steady_clock::now();
    probe::ProbeOptions po;
    po.model = udir / "model";
    po.reference = oracle;
    po.target = target;
    po.out = o.out / "probe";
    po.force = true;  // the demo's own folder, rewritten every run
    po.probes = {probe::kRobustness};  // every probe
    // The demo's models learn at 3e-3 (unlearning at 5e-4): relearning at the library's 1e-5,
    // meant for pretrained models, would move nothing in 20 steps.
    po.relearn_steps = {5, 20};
    po.relearn_lr = 1e-3;
    po.eval = eo;
    po.eval.tokenizer = base;
    if (!w) po.items_per_person = data.items_per_author;
    log_info("demo: probing the unlearned model (", (o.out / "probe").string(), ")");
    probe_result = probe::run_probes(po);
    timing["probes_s"] = seconds_since(tt);
  }

  // Audit: what each model memorised — the canaries' exposure, the ghost sentences, training
  // text extracted by sampling, text surfaced by token forcing.
  Json audit_result;
  if (o.audit && w) {
    tt = std::chrono::steady_clock::now();
    audit::AuditOptions ao = demo_audit_options(o, o.out / "audit", base);
    ao.model = udir / "model";
    ao.model_role = "unlearned";
    ao.target = target;
    ao.oracle = oracle;
    ao.canaries = wdir / "canaries.jsonl";
    if (!w->ghosts.empty()) ao.ghost = wdir / "ghost.jsonl";
    ao.corpus = wdir / "train_text.jsonl";
    ao.extract.samples = 100;
    ao.extract.ngram = 8;
    ao.forcing.new_tokens = 12;
    log_info("demo: auditing target, oracle and unlearned model (", ao.out.string(), ")");
    audit_result = audit::run_audit(ao);
    timing["audit_s"] = seconds_since(tt);
  }

  // The insertion study (Hubble): the target is the standard model; perturbed models add the
  // insertions to its recipe, spread over the run, in its first epoch or in its last.
  Json study_result;
  if (o.insertion_study) {
    tt = std::chrono::steady_clock::now();
    WorldConfig sc = r.world;
    sc.insert_counts = r.insert_counts;
    sc.inserts_per_count = r.inserts_per_count;
    const World sw = generate_world(sc);  // the same world, with insertions beside it
    const Json insert_key = {data.key, {"counts", sc.insert_counts}, {"per_count", sc.inserts_per_count},
                                {"revision", kInsertionRevision}};
    const fs::path idir = cache / ("insertions-" + short_hash(insert_key));
    if (!fs::exists(idir / "insert_ghost.jsonl")) {
      StagedFolder staged(idir, /*replace=*/true, "demo insertions");
      write_insertions(sw, staged.path());
      staged.commit();
    }
    std::vector<std::pair<std::string, fs::path>> perturbed;
    for (const char* timing : {"spread", "first", "last"}) {
      const Json data_more = {{"insert_text", (idir / "insert_text.jsonl").string()}, {"insert_timing", timing}};
      perturbed.emplace_back(timing, train_model(std::string("perturbed-") + timing + "-" +
                                                     short_hash({train_key, insert_key, timing}),
                                                 cache, base, r, target_qa, wdir / "train_text.jsonl", o, res.trained,
                                                 data_more));
    }
    timing["study_training_s"] = seconds_since(tt);
    audit::AuditOptions ao = demo_audit_options(o, o.out / "study", base);
    ao.compare = {{"standard", target}, perturbed[0], perturbed[1]};
    ao.model = perturbed[2].second;
    ao.model_role = perturbed[2].first;
    ao.audits = {"exposure", "ghost", "extract"};
    ao.canaries = idir / "insert_canaries.jsonl";
    ao.ghost = idir / "insert_ghost.jsonl";
    ao.corpus = idir / "insert_text.jsonl";
    ao.extract.samples = 200;
    // Seven words: a secret's whole sentence, digits included ("The locker code of X is 123456.");
    // six would count "The locker code of X is" followed by any number.
    ao.extract.ngram = 7;
    log_info("demo: auditing the insertion study's standard and perturbed models (", ao.out.string(), ")");
    study_result = audit::run_audit(ao);
    timing["study_s"] = seconds_since(tt);
  }

  // Summary, checks against the demo's quality targets, and the report.
  Json s = {{"format", "lethe.demo"}, {"format_version", 1}, {"method", r.method}, {"forget_split", o.forget_split},
            {"seed", o.seed}, {"scale", o.scale}, {"world", wdir.string()}};
  if (!w) {
    s["data"] = {{"source", fs::absolute(o.data).string()}, {"authors", data.authors},
                 {"forget_authors", data.forget_authors}, {"items_per_author", data.items_per_author}};
  }
  s["recipe"] = {{"world", world_key}, {"model", r.model}, {"train", r.train}, {"unlearn", ucfg["train"]},
                 {"method_params", r.method_params}, {"max_length", r.max_length},
                 {"max_new_tokens", r.max_new_tokens}};
  {
    const Json run = parse_json_file(udir / "run.json");
    s["unlearning"] = {{"steps", run["result"]["steps"]}, {"stopped_by_rule", run["result"]["stopped_by_rule"]},
                       {"stop_reason", run["result"]["stop_reason"]}};
  }
  for (const auto& e : models) {
    const std::string key = &e == &models[2] ? "unlearned" : e.name;
    s["models"][key] = e.summary;
    if (w) s["canaries"][key] = canary_summary(e.canaries);
  }
  auto val = [&](const std::string& m, const char* k) {
    const Json& j = s["models"][m];
    return j.contains(k) ? j[k].get<double>() : NAN;
  };
  auto ci = [&](const std::string& m, const char* k) {
    const Json& j = s["models"][m];
    return j.contains("ci") && j["ci"].contains(k) ? j["ci"][k] : Json();
  };
  // Each check reads one model's metric and stores it with the metric's 95% bootstrap interval.
  auto check = [&](const std::string& what, const std::string& m, const char* k, auto pass) -> Json& {
    const double v = val(m, k);
    Json c = {{"check", what}, {"model", m}, {"metric", k}, {"value", v}, {"pass", pass(v)}};
    if (Json i = ci(m, k); !i.is_null()) c["ci"] = i;
    s["checks"].push_back(c);
    return s["checks"].back();
  };
  check("target memorizes: forget ROUGE-L recall >= 0.9", "target", "forget_Q_A_ROUGE", [](double v) { return v >= 0.9; });
  check("oracle does not: forget ROUGE-L recall <= 0.5", "oracle", "forget_Q_A_ROUGE", [](double v) { return v <= 0.5; });
  check("forget quality after unlearning >= 0.01", "unlearned", "forget_quality", [](double v) { return v >= 0.01; });
  const double target_utility = val("target", "model_utility");
  Json& utility = check("model utility after unlearning >= 0.9 x the target's", "unlearned", "model_utility",
                        [&](double v) { return v >= 0.9 * target_utility; });
  utility["ratio_to_target"] = val("unlearned", "model_utility") / target_utility;
  utility["target_value"] = target_utility;
  if (Json i = ci("target", "model_utility"); !i.is_null()) utility["target_ci"] = i;
  check("privleak after unlearning within +-25", "unlearned", "privleak", [](double v) { return std::fabs(v) <= 25; });
  res.seconds = seconds_since(t0);
  timing["total_s"] = res.seconds;
  if (!probe_result.is_null()) {
    s["probe"] = {{"path", (o.out / "probe" / "PROBE.json").string()}, {"seconds", probe_result["seconds"]}};
    for (const auto& [role, m] : probe_result["models"].items()) {
      const std::string key = role == "candidate" ? "unlearned" : role;
      s["probe"]["verdicts"][key] = {{"verdict", m["verdict"]}, {"reason", m["verdict_reason"]}};
    }
  }
  if (!audit_result.is_null()) {
    s["audit"] = {{"path", (o.out / "audit" / "AUDIT.json").string()}, {"seconds", audit_result["seconds"]}};
    for (const auto& m : audit_result["models"]) {
      for (const auto& a : m["audits"]) s["audit"]["models"][m["role"].get<std::string>()][a["audit"].get<std::string>()] = a["aggregate"];
    }
  }
  if (!study_result.is_null()) {
    s["insertion_study"] = {{"path", (o.out / "study" / "AUDIT.json").string()}, {"counts", r.insert_counts},
                            {"per_count", r.inserts_per_count}, {"seconds", study_result["seconds"]}};
    for (const auto& m : study_result["models"]) {
      for (const auto& a : m["audits"]) {
        s["insertion_study"]["models"][m["role"].get<std::string>()][a["audit"].get<std::string>()] = a["aggregate"];
      }
    }
  }
  s["timing"] = timing;
  s["trained"] = res.trained;
  write_file_atomic(o.out / "SUMMARY.json", s.dump(2) + "\n");

  eval::ReportInput in;
  const std::string trained_how =
      "a " + std::to_string(r.vocab) +
      "-token tokenizer, a target model trained on everyone and an oracle trained with the same recipe on everyone "
      "but the forget " + (w ? "people" : "authors") + " were trained from scratch; the target then unlearned " +
      o.forget_split + ". The oracle is the reference: an unlearned model should be indistinguishable from it on the "
      "forget set and as useful as the target elsewhere.";
  if (w) {
    in.title = "lethe demo: unlearning " + o.forget_split + " of a fictitious world with " + r.method;
    in.notes = {"A world of " + std::to_string(w->people.size()) + " fictitious people (" +
                std::to_string(w->holdout.size()) + " more held out) was generated; " + trained_how};
  } else {
    in.title = "lethe demo: unlearning " + o.forget_split + " of " + o.data.filename().string() + " with " + r.method;
    in.notes = {std::to_string(data.authors) + " authors of " + fs::absolute(o.data).string() + " (" +
                std::to_string(data.forget_authors) + " of " + o.forget_split + ", " +
                std::to_string(data.items_per_author) + " questions each) were used; " + trained_how +
                " The folder has no canaries: the canary section is left out."};
  }
  in.lead_html = lead_html(s, r.method);
  for (const auto& e : models) in.models.push_back({e.name, e.summary, e.eval});
  std::vector<std::pair<std::string, std::vector<CanaryResult>>> cans;
  for (const auto& e : models) cans.emplace_back(e.name, e.canaries);
  if (w) in.extra_sections.emplace_back("Canaries: memorization against repetition", canary_html(cans));
  if (!audit_result.is_null()) {
    in.extra_sections.emplace_back(
        "What still leaks: the audit",
        audit::audit_report_html(audit_result) +
            "<p class=\"note\">The same canaries, ghost sentences, samples and forced tokens on each model; exposure "
            "estimated from 2,000 sampled candidates of each 6-digit secret; numbers in <code>audit/AUDIT.json</code>.</p>");
  }
  if (!study_result.is_null()) {
    std::string counts;
    for (int c : r.insert_counts) counts += (counts.empty() ? "" : ", ") + std::to_string(c);
    in.extra_sections.emplace_back(
        "Memorisation against duplication: the insertion study",
        "<p class=\"note\">Hubble's design on this world: " + std::to_string(r.inserts_per_count) +
            " secrets, biographies (ending in a member number) and passphrases per count were inserted " + counts +
            " times over training into three perturbed models trained with the target's recipe — spread over the "
            "run, all in its first epoch, all in its last —; the target, which never saw them, is the standard "
            "model. Numbers in <code>study/AUDIT.json</code>.</p>" +
            audit::audit_report_html(study_result));
  }
  if (!probe_result.is_null()) {
    in.extra_sections.emplace_back(
        "Removal or suppression: the probes",
        probe::probe_report_html(probe_result, {{"candidate", "unlearned (" + r.method + ")"}}) +
            "<p class=\"note\">Each attack ran on the unlearned model, the oracle and the target; numbers in "
            "<code>probe/PROBE.json</code>.</p>");
  }
  res.report = o.out / "report.html";
  write_file_atomic(res.report, eval::render_report(in, ref ? &*ref : nullptr));
  res.summary = s;
  return res;
}

}  // namespace lethe::world

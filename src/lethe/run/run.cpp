// finetune / unlearn runs as named stages over the typed config (run.h; the config: config.cpp).
#include "lethe/run/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <memory>
#include <numeric>
#include <set>
#include <torch/version.h>

#include "lethe/core/error.h"
#include "lethe/core/random.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/core/runtime.h"
#include "lethe/core/version.h"
#include "lethe/data/batch.h"
#include "lethe/data/dataset.h"
#include "lethe/model/generate.h"
#include "lethe/model/load.h"
#include "lethe/model/score.h"
#include "lethe/train/objectives.h"
#include "lethe/unlearn/objective.h"
#include "text/regex.h"

namespace lethe::run {
namespace fs = std::filesystem;
using train::EvalCallback;
using train::FinetuneObjective;
using train::LoraAdapter;
using train::NamedGenerators;
using train::Objective;
using train::planned_steps;
using train::Probe;
using train::StopCheck;

namespace {

std::vector<data::Example> finetune_examples(const RunConfig& c, const text::Tokenizer& tok, std::size_t n,
                                             text::Truncation& trunc) {
  std::vector<data::Example> out;
  if (c.data.format == "qa") {
    out = data::qa_examples(tok, c.data.prompt_template, data::read_qa(c.data.train), n, c.data.span_rule, &trunc);
  } else if (c.data.format == "completion") {
    out = data::completion_examples(
        tok, data::read_completions(c.data.train, c.data.prompt_key, c.data.continuation_key), n);
  } else {
    out = data::pretraining_chunks(tok, data::read_texts(c.data.train, c.data.text_key), n);
  }
  if (!c.data.train_text.empty()) {
    auto chunks = data::pretraining_chunks(tok, data::read_texts(c.data.train_text, c.data.text_key), n);
    out.insert(out.end(), chunks.begin(), chunks.end());
  }
  return out;
}

// Controlled insertions (data.insert_text): each epoch's copies packed into windows of their own
// and appended to `examples`, after the every-epoch ones, so those are the same windows as without
// insertions. Returns, per epoch, the indices of its windows.
std::vector<std::vector<std::size_t>> append_insertions(const RunConfig& c, const text::Tokenizer& tok, std::size_t n,
                                                     std::vector<data::Example>& examples) {
  const std::size_t every = examples.size();
  const auto docs = data::read_insertions(c.data.insert_text, c.data.text_key);
  std::vector<std::int64_t> reps;
  for (const auto& d : docs) reps.push_back(d.repetitions);
  const auto schedule = data::insertion_schedule(reps, c.train.epochs, c.data.insert_timing, c.seed);
  std::vector<std::vector<std::size_t>> by_epoch(schedule.size());
  std::int64_t copies = 0;
  for (std::size_t e = 0; e < schedule.size(); ++e) {
    if (schedule[e].empty()) continue;
    std::vector<std::string> texts;
    for (auto i : schedule[e]) texts.push_back(docs[i].text);
    copies += static_cast<std::int64_t>(texts.size());
    for (auto& ex : data::pretraining_chunks(tok, texts, n)) {
      by_epoch[e].push_back(examples.size());
      examples.push_back(std::move(ex));
    }
  }
  log_info("finetune: ", docs.size(), " inserted documents, ", copies, " copies over ", schedule.size(),
           " epochs (timing ", c.data.insert_timing, ") in ", examples.size() - every, " windows");
  return by_epoch;
}

// Each example's mean log-probability per label token (the first `limit`), in order.
std::vector<double> mean_token_logprobs(model::CausalLM& m, const std::vector<data::Example>& examples,
                                        std::size_t limit, std::int64_t pad_id) {
  torch::NoGradGuard ng;
  const bool training = m.is_training();
  m.eval();
  std::vector<double> out;
  const std::size_t n = std::min(limit, examples.size());
  for (std::size_t i = 0; i < n; i += 8) {
    std::vector<const data::Example*> chunk;
    for (std::size_t j = i; j < std::min(n, i + 8); ++j) chunk.push_back(&examples[j]);
    data::Batch b = data::collate(chunk, pad_id);
    auto lp = model::score_tokens(m, b.input_ids, b.attention_mask, b.labels);
    const at::Tensor per = (lp.logprobs.sum(-1) / lp.mask.sum(-1).clamp_min(1)).to(at::kDouble).contiguous();
    out.insert(out.end(), per.data_ptr<double>(), per.data_ptr<double>() + per.numel());
  }
  m.train(training);
  return out;
}

// Geometric-mean per-token probability of each example's label tokens, averaged.
double mean_answer_probability(model::CausalLM& m, const std::vector<data::Example>& examples,
                               std::size_t limit, std::int64_t pad_id) {
  const std::vector<double> lp = mean_token_logprobs(m, examples, limit, pad_id);
  double total = 0;
  for (double v : lp) total += std::exp(v);
  return lp.empty() ? 0.0 : total / static_cast<double>(lp.size());
}

// The examples' mean per-token NLL (the mean over examples of each one's mean over its tokens).
double mean_answer_nll(model::CausalLM& m, const std::vector<data::Example>& examples, std::int64_t pad_id) {
  const std::vector<double> lp = mean_token_logprobs(m, examples, examples.size(), pad_id);
  double total = 0;
  for (double v : lp) total -= v;
  return lp.empty() ? 0.0 : total / static_cast<double>(lp.size());
}

// Share of repeated 3-grams in greedy continuations of a few prompts.
double repetition_share(model::CausalLM& m, const std::vector<data::Example>& examples, std::int64_t pad_id) {
  const bool training = m.is_training();
  m.eval();
  std::vector<std::vector<std::int64_t>> prompts;
  for (std::size_t i = 0; i < std::min<std::size_t>(4, examples.size()); ++i) {
    const auto& e = examples[i];
    std::size_t k = 0;
    while (k < e.labels.size() && e.labels[k] == lethe::kIgnoreIndex) ++k;
    prompts.emplace_back(e.input_ids.begin(), e.input_ids.begin() + static_cast<std::ptrdiff_t>(std::max<std::size_t>(k, 1)));
  }
  model::GenerateOptions o;
  o.max_new_tokens = 32;
  o.stop_at_eos = true;
  o.pad_token_id = pad_id;
  auto r = model::generate(m, prompts, o);
  std::size_t grams = 0, repeated = 0;
  for (const auto& t : r.tokens) {
    std::set<std::tuple<std::int64_t, std::int64_t, std::int64_t>> seen;
    for (std::size_t i = 0; i + 2 < t.size(); ++i) {
      ++grams;
      if (!seen.insert({t[i], t[i + 1], t[i + 2]}).second) ++repeated;
    }
  }
  m.train(training);
  return grams ? static_cast<double>(repeated) / static_cast<double>(grams) : 0.0;
}

fs::path canonical_path(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? fs::absolute(p).lexically_normal() : c;
}

// The resolved config as a run's identity: paths as canonical absolute paths (so the same run
// spelled from another directory, or through a link, is the same run), without the settings
// that only change what is shown.
Json fingerprint_config(const RunConfig& c) {
  Json j = Json::parse(c.resolved_json);
  auto canon = [&](Json& parent, const char* key) {
    if (parent.is_object() && parent.contains(key) && parent[key].is_string() && !parent[key].get<std::string>().empty()) {
      const fs::path p(parent[key].get<std::string>());
      parent[key] = canonical_path(p.is_absolute() ? p : c.config_dir / p).string();
    }
  };
  for (const char* k : {"model", "tokenizer", "output_dir"}) canon(j, k);
  if (j.contains("data")) {
    for (const char* k : {"train", "train_text", "insert_text", "forget", "forget_text", "retain", "idk"}) canon(j["data"], k);
  }
  if (j.contains("eval")) {
    for (const char* k : {"data", "reference"}) canon(j["eval"], k);
  }
  if (j.contains("probe")) {
    for (const char* k : {"data", "reference", "target"}) canon(j["probe"], k);
  }
  if (j.contains("train") && j["train"].is_object()) j["train"].erase("progress");
  return j;
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

// ---- the stages of a run ------------------------------------------------------------------------

namespace {

const char* kind_name(RunKind k) { return k == RunKind::kFinetune ? "finetune" : "unlearn"; }

std::vector<NamedPath> data_paths(const RunConfig& c) {
  return {{"data.train", c.data.train}, {"data.train_text", c.data.train_text},
          {"data.insert_text", c.data.insert_text}, {"data.forget", c.data.forget},
          {"data.forget_text", c.data.forget_text}, {"data.retain", c.data.retain}, {"data.idk", c.data.idk}};
}

// Every input before any work: a missing retain file must not surface after the model loaded,
// and no output may land inside an input.
void check_inputs(const RunConfig& c) {
  LETHE_CHECK(fs::exists(c.from_scratch ? c.model / "config.json" : c.model), c.model.string(),
              ": no such model folder");
  for (const auto& [key, p] : data_paths(c)) {
    LETHE_CHECK(p.empty() || fs::is_regular_file(p), p.string(), ": no such file (", key, ")");
  }
  LETHE_CHECK(c.tokenizer.empty() || fs::exists(c.tokenizer), c.tokenizer.string(), ": no such tokenizer (tokenizer)");
  std::vector<NamedPath> inputs = {{"model", c.model}, {"tokenizer", c.tokenizer}};
  for (const auto& d : data_paths(c)) inputs.push_back(d);
  if (c.eval) {
    inputs.push_back({"eval.data", c.eval->data});
    inputs.push_back({"eval.reference", c.eval->reference});
  }
  if (c.probe) {
    inputs.push_back({"probe.data", c.probe->eval.data});
    inputs.push_back({"probe.reference", c.probe->reference});
    inputs.push_back({"probe.target", c.probe->target});
  }
  check_output_apart(c.output_dir, "output_dir", inputs);
  // A run folder is new, empty, or one of lethe's own (resumed or rerun); never a user's folder.
  LETHE_CHECK(is_absent_or_empty(c.output_dir) || owned_by_lethe(c.output_dir) ||
                  fs::exists(c.output_dir / "run.json") || fs::exists(c.output_dir / "checkpoints"),
              "output_dir ", c.output_dir.string(),
              " holds files that no lethe run wrote; give a new or empty folder (a run writes model/, "
              "checkpoints/, train_log.jsonl and run.json there)");
  // What will be copied into model/ is checked now, not after training.
  (void)text::check_tokenizer_files(c.tokenizer.empty() ? c.model : c.tokenizer);
}

// The `eval:` section, ready before training: its tokenizer, metrics and the reference's
// numbers (a reference model folder is evaluated now, once).
struct Evaluation {
  eval::EvalOptions opt;
  std::shared_ptr<const text::Tokenizer> tok;
  std::vector<std::string> metrics;
  std::optional<eval::ReferenceData> ref;
  std::int64_t every = 0;

  const eval::ReferenceData* reference() const { return ref ? &*ref : nullptr; }
  // SUMMARY.json's numbers on the model as it is now, for train_log.jsonl.
  std::map<std::string, double> numbers(model::CausalLM& m) const {
    eval::EvalOptions quiet = opt;
    quiet.progress = false;
    const eval::Json summary = eval::summarize(eval::evaluate_model(m, *tok, quiet, reference()), reference(), metrics, opt.seed);
    std::map<std::string, double> out;
    for (const auto& [k, v] : summary.items()) {
      if (v.is_number() && k != "format_version") out[k] = v.get<double>();
    }
    return out;
  }
  // EVAL.json, SUMMARY.json and report.html of the final model, as the run's own eval/ folder.
  fs::path write_final(model::CausalLM& m) const {
    eval::Json e = eval::evaluate_model(m, *tok, opt, reference());
    eval::Json summary = eval::summarize(e, reference(), metrics, opt.seed);
    return eval::write_eval_outputs(opt.out, std::move(e), std::move(summary), reference(),
                                    "lethe " + opt.suite + " evaluation of the run's final model",
                                    /*report=*/true, /*replace=*/true)
        .summary_path;
  }
};

std::unique_ptr<Evaluation> prepare_evaluation(const RunConfig& c) {
  if (!c.eval) return nullptr;
  auto e = std::make_unique<Evaluation>();
  e->opt = *c.eval;
  e->every = c.eval_every;
  e->tok = text::load_tokenizer(c.tokenizer.empty() ? c.model : c.tokenizer);
  e->metrics = eval::eval_metrics(e->opt);
  e->ref = eval::prepare_reference(e->opt, e->metrics);
  return e;
}

// The model, its tokenizer and the fingerprints of every input.
struct Inputs {
  Json fingerprints = Json::object();
  fs::path tok_path;
  std::shared_ptr<const text::Tokenizer> tok;
  std::int64_t pad_id = 0;
  std::shared_ptr<model::CausalLM> model;
  std::size_t max_len = 0;  // tokens per sequence: data.max_length within the model's positions
};

Inputs prepare_inputs(const RunConfig& c) {
  Inputs in;
  auto fingerprint = [&](const fs::path& p) {
    if (!p.empty() && fs::is_regular_file(p)) in.fingerprints[canonical_path(p).string()] = file_fingerprint(p);
  };
  for (const auto& [_, p] : data_paths(c)) fingerprint(p);
  fingerprint(c.model / "config.json");
  if (!c.from_scratch && fs::exists(c.model / "model.safetensors")) fingerprint(c.model / "model.safetensors");

  in.tok_path = c.tokenizer.empty() ? c.model : c.tokenizer;
  in.tok = text::load_tokenizer(in.tok_path);
  in.pad_id = text::padding_id(*in.tok);
  model::LoadOptions lo;
  lo.device = parse_device(c.device);
  // model.dtype is for frozen weights: a LoRA run's base. A run that trains the model's own
  // weights holds them in fp32 (its reference copy takes model.dtype, make_job).
  lo.dtype = c.lora ? c.model_dtype : c10::kFloat;
  in.model = c.from_scratch ? model::create_model(model::read_config(c.model), lo, c.seed) : model::load_model(c.model, lo);
  LETHE_CHECK(in.tok->vocab_size() <= in.model->config().vocab_size, in.tok_path.string(), ": the tokenizer has ",
              in.tok->vocab_size(), " tokens but the model only ", in.model->config().vocab_size);
  in.model->train();
  in.model->set_gradient_checkpointing(c.train.gradient_checkpointing);
  // Sequences within the model's positions (one left for the EOS of a QA item).
  const std::int64_t fits = in.model->config().max_position_embeddings - 1;
  if (c.data.max_length > fits) {
    log_info("data.max_length ", c.data.max_length, " is beyond this model's ", in.model->config().max_position_embeddings,
             " positions: sequences are cut at ", fits, " tokens (what that cuts from answers is reported)");
  }
  in.max_len = static_cast<std::size_t>(std::max<std::int64_t>(std::min(c.data.max_length, fits), 2));
  return in;
}

// What a run trains on and against: the one place finetune and unlearn differ. Its objective
// refers to its own data, so a Job stays where it was made (held by pointer).
struct Job {
  std::string label;  // for the log: "finetune", "unlearn (NPO)"
  std::vector<data::Example> train_set, forget, retain, alternate;
  std::vector<data::Example> holdout;  // train.stop_rule holdout_nll: never-seen people's answers
  std::unique_ptr<unlearn::Method> method;
  std::shared_ptr<model::CausalLM> reference;  // a frozen copy, for methods that compare with it
  text::Truncation truncation;
  std::unique_ptr<Objective> objective;
  const std::vector<data::Example>* probe_set = nullptr;  // the collapse guard's repetition probe

  // The mean answer probabilities logged every train.eval_every steps and at the end.
  std::map<std::string, double> probabilities(model::CausalLM& m, std::size_t limit, std::int64_t pad_id) const {
    std::map<std::string, double> r;
    if (!train_set.empty()) r["train_prob"] = mean_answer_probability(m, train_set, limit, pad_id);
    if (!forget.empty()) r["forget_prob"] = mean_answer_probability(m, forget, limit, pad_id);
    if (!retain.empty()) r["retain_prob"] = mean_answer_probability(m, retain, limit, pad_id);
    return r;
  }
};

std::unique_ptr<Job> make_job(const RunConfig& c, const Inputs& in) {
  auto job = std::make_unique<Job>();
  Job& j = *job;
  const auto n = in.max_len;
  if (c.kind == RunKind::kFinetune) {
    j.label = "finetune";
    j.train_set = finetune_examples(c, *in.tok, n, j.truncation);
    if (c.data.insert_text.empty()) {
      j.objective = std::make_unique<FinetuneObjective>(*in.model, j.train_set, in.pad_id);
    } else {
      const std::size_t every = j.train_set.size();
      auto by_epoch = append_insertions(c, *in.tok, n, j.train_set);
      j.objective = std::make_unique<FinetuneObjective>(*in.model, j.train_set, in.pad_id, every, std::move(by_epoch));
    }
    j.probe_set = &j.train_set;
  } else {
    j.label = "unlearn (" + c.method + ")";
    j.method = unlearn::make_method(c.method, c.method_params);
    const auto forget_records = c.data.forget.empty() ? std::vector<data::QARecord>{} : data::read_qa(c.data.forget);
    j.forget = data::qa_examples(*in.tok, c.data.prompt_template, forget_records, n, c.data.span_rule, &j.truncation);
    if (!c.data.forget_text.empty()) {
      // Raw text: every token after the first is a target, as a text is scored (scoring_example).
      std::size_t cut = 0;
      const auto texts = data::read_texts(c.data.forget_text, c.data.text_key);
      LETHE_CHECK(!texts.empty(), c.data.forget_text.string(), ": no texts (data.forget_text)");
      for (const auto& t : texts) {
        j.forget.push_back(data::scoring_example(*in.tok, "", t, n));
        if (in.tok->encode(t, true).size() > n) ++cut;
      }
      if (cut > 0) log_warn("data.max_length ", n, " truncated ", cut, " of ", texts.size(), " texts of data.forget_text");
    }
    if (!c.data.retain.empty()) {
      j.retain = data::qa_examples(*in.tok, c.data.prompt_template, data::read_qa(c.data.retain), n, c.data.span_rule,
                                   &j.truncation);
    }
    if (!c.data.holdout.empty()) {
      j.holdout = data::qa_examples(*in.tok, c.data.prompt_template, data::read_qa(c.data.holdout), n, c.data.span_rule,
                                    &j.truncation);
      LETHE_CHECK(!j.holdout.empty(), c.data.holdout.string(), ": no QA items (data.holdout)");
    }
    LETHE_CHECK(!j.method->needs_retain() || !j.retain.empty(), "method ", j.method->name(),
                " needs a retain set: set data.retain");
    if (j.method->needs_alternate()) {
      LETHE_CHECK(!c.data.idk.empty(), "method ", j.method->name(), " needs refusal answers: set data.idk");
      LETHE_CHECK(c.data.forget_text.empty(), "method ", j.method->name(),
                  " pairs each forget question with a refusal, and data.forget_text has no questions: use it with a "
                  "method that needs no refusals (GradAscent, GradDiff, NPO, SimNPO, RMU, ...)");
      j.alternate = data::idk_examples(*in.tok, c.data.prompt_template, forget_records,
                                       data::read_texts(c.data.idk, "text"), c.seed, n, &j.truncation);
    }
    // The reference is the model before any update. Under LoRA the base stays frozen, so it is
    // the base itself, shared (no copy); FILA changes the base at attach time and a run without
    // LoRA trains it, so those take a copy first, held in model.dtype.
    if (j.method->needs_reference()) {
      if (c.lora && c.lora_config.init != "fila") {
        j.reference = model::share_weights(*in.model);
      } else {
        j.reference = model::clone_model(*in.model, c.model_dtype);
        j.reference->eval();
        for (auto& p : j.reference->parameters()) p.set_requires_grad(false);
      }
    }
    j.objective = std::make_unique<unlearn::UnlearnObjective>(*in.model, j.reference.get(), *j.method, j.forget,
                                                              j.retain, j.alternate, in.pad_id, c.seed);
    j.probe_set = j.retain.empty() ? &j.forget : &j.retain;
  }
  if (j.truncation.truncated_items > 0) {
    log_warn("data.max_length ", c.data.max_length, " truncated the answers of ", j.truncation.truncated_items, " of ",
             j.truncation.items, " QA items (", j.truncation.answer_tokens_lost,
             " answer tokens lost); training sees only the tokens kept");
  }
  return job;
}

// FILA's initialisation batches: the forget set in training-sized batches, each with the retain
// items paired with it as training pairs them.
void fila_init(const RunConfig& c, const Inputs& in, const Job& j, LoraAdapter& adapter) {
  LETHE_CHECK(!j.retain.empty(), "lora.init: fila needs a retain set (data.retain)");
  const auto bs = static_cast<std::size_t>(c.train.batch_size);
  std::vector<data::Batch> fb, rb;
  for (std::size_t i = 0; i < j.forget.size(); i += bs) {
    std::vector<const data::Example*> chunk;
    for (std::size_t k = i; k < std::min(j.forget.size(), i + bs); ++k) chunk.push_back(&j.forget[k]);
    fb.push_back(data::collate(chunk, in.pad_id));
  }
  for (std::size_t k = 0; k < fb.size(); ++k) {
    std::vector<const data::Example*> chunk;
    for (std::int64_t i = 0; i < fb[k].size(); ++i) {
      chunk.push_back(&j.retain[data::paired_retain_index(k * bs + i, j.retain.size(), c.seed, 0)]);
    }
    rb.push_back(data::collate(chunk, in.pad_id));
  }
  adapter.fila_init(*in.model, fb, rb);
}

// The parameters the optimizer updates: a LoRA adapter's, the method's selection, or all.
struct Trainable {
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::shared_ptr<LoraAdapter> adapter;
};

Trainable select_trainable(const RunConfig& c, const Inputs& in, const Job& j) {
  Trainable t;
  model::CausalLM& m = *in.model;
  if (c.lora) {
    LETHE_CHECK(!j.method || j.method->trainable_parameters().empty(), "method ", c.method,
                " trains selected base parameters; run it without lora");
    t.adapter = LoraAdapter::attach(m, c.lora_config, c.seed);
    if (c.lora_config.init == "fila") fila_init(c, in, j, *t.adapter);
    t.params = t.adapter->named_parameters();
  } else if (j.method && !j.method->trainable_parameters().empty()) {
    std::vector<std::unique_ptr<text::Regex>> res;
    for (const auto& r : j.method->trainable_parameters()) {
      res.push_back(std::make_unique<text::Regex>(r, "method.trainable_params"));
    }
    for (auto& item : m.named_parameters()) {
      const bool hit = std::any_of(res.begin(), res.end(), [&](const auto& re) { return re->full_match(item.key()); });
      item.value().set_requires_grad(hit);
      if (hit) t.params.emplace_back(item.key(), item.value());
    }
    LETHE_CHECK(!t.params.empty(), "method ", c.method, ": no parameter matches its trainable_params");
  } else {
    for (auto& item : m.named_parameters()) t.params.emplace_back(item.key(), item.value());
  }
  for (const auto& [name, p] : t.params) {
    LETHE_CHECK(!model::is_half(p.scalar_type()), "internal: trainable tensor ", name, " is held in ",
                c10::toString(p.scalar_type()), "; trainable weights stay float32");
  }
  return t;
}

// Training, with the numbers logged along the way: answer probabilities every train.eval_every
// steps (and at the last), the evaluation every eval.every steps.
TrainResult train_stage(const RunConfig& c, const Inputs& in, const Job& j, const Trainable& t, const Evaluation* ev) {
  TrainerConfig tc = c.train;
  tc.run_dir = c.output_dir;
  tc.seed = c.seed;
  {
    std::string fp = fingerprint_config(c).dump();
    for (const auto& [k, v] : in.fingerprints.items()) fp += k + v.get<std::string>();
    tc.fingerprint = std::to_string(fnv1a64(fp.data(), fp.size()));
  }
  model::CausalLM& m = *in.model;
  const auto limit = static_cast<std::size_t>(std::max<std::int64_t>(c.eval_examples, 0));
  // The trainer calls back every tc.eval_every steps and at the last one; each part keeps its own
  // period.
  const std::int64_t prob_every = tc.eval_every;
  const bool periodic = ev && ev->every > 0;
  if (periodic) tc.eval_every = prob_every > 0 ? std::gcd(prob_every, ev->every) : ev->every;
  const std::int64_t total_steps = planned_steps(tc, *j.objective);
  EvalCallback callback = [&](std::int64_t step) {
    std::map<std::string, double> r;
    if (prob_every > 0 && (step % prob_every == 0 || step == total_steps)) r = j.probabilities(m, limit, in.pad_id);
    if (periodic && step % ev->every == 0) {
      for (const auto& [k, v] : ev->numbers(m)) r[k] = v;
    }
    return r;
  };
  Probe probe = [&]() { return repetition_share(m, *j.probe_set, in.pad_id); };
  // holdout_nll: the forget answers as unfamiliar as never-seen people's — where the oracle, which
  // never saw either, would be — without the oracle. Both sets in full at every check.
  StopCheck stop;
  if (c.stop_rule == "holdout_nll") {
    stop = [&](std::int64_t) {
      const double forget_nll = mean_answer_nll(m, j.forget, in.pad_id), holdout_nll = mean_answer_nll(m, j.holdout, in.pad_id);
      train::StopDecision d{{}, {{"forget_nll", forget_nll}, {"holdout_nll", holdout_nll}}};
      if (forget_nll >= holdout_nll) {
        d.reason = "the forget answers' mean NLL " + std::to_string(forget_nll) + " reached the holdout answers' " +
                   std::to_string(holdout_nll);
      }
      return d;
    };
  }
  log_info(j.label, ": ", t.params.size(), " trainable tensors, ", total_steps, " steps, output ",
           c.output_dir.string());
  return train::train(t.params, *j.objective, tc, callback, probe,
                      t.adapter ? t.adapter->generators() : NamedGenerators{}, stop);
}

// model/ (merged, for LoRA runs unless lora.merge is off and the base is untouched) and
// adapter/. Each folder is built beside its place and renamed into it when complete; the run
// owns them, so a rerun replaces them as a whole.
void write_outputs(const RunConfig& c, const Inputs& in, const Trainable& t, RunSummary& summary) {
  model::CausalLM& m = *in.model;
  auto save_full = [&](const fs::path& dir, const model::TensorFilter& filter) {
    StagedFolder out(dir, /*replace=*/true, "output_dir/model");
    model::write_model(m, out.path(), {}, filter);
    text::install_tokenizer(in.tok_path, out.path(), m.config().vocab_size);
    out.commit();
  };
  if (t.adapter) {
    summary.adapter_dir = c.output_dir / "adapter";
    StagedFolder out(summary.adapter_dir, /*replace=*/true, "output_dir/adapter");
    t.adapter->save(out.path(), c.model.string());
    out.commit();
    if (c.lora_merge || t.adapter->base_modified()) {
      summary.model_dir = c.output_dir / "model";
      save_full(summary.model_dir, t.adapter->merged_filter());
    }
  } else {
    summary.model_dir = c.output_dir / "model";
    save_full(summary.model_dir, {});
  }
}

// run.json: the resolved config, versions, input fingerprints, what was cut, the outcome.
void write_record(const RunConfig& c, const Inputs& in, const Job& j, const Trainable& t, const RunSummary& summary,
                  const std::string& started_at, double seconds) {
  Json result = {{"steps", summary.result.steps},
                 {"resumed_from", summary.result.resumed_from},
                 {"stopped_by_guard", summary.result.stopped_by == "guard"},
                 {"stopped_by_rule", summary.result.stopped_by == "rule"},
                 {"stop_reason", summary.result.stop_reason},
                 {"last_terms", summary.result.last_terms},
                 {"final_eval", summary.final_eval},
                 {"seconds", seconds}};
  Json record = {{"format_version", 1},
                 {"kind", kind_name(c.kind)},
                 {"lethe_version", version()},
                 {"torch_version", TORCH_VERSION},
                 {"threads", threads()},
                 {"started", started_at},
                 {"finished", now_utc()},
                 {"config", Json::parse(c.resolved_json)},
                 {"inputs", in.fingerprints},
                 {"truncation",
                  {{"items", j.truncation.items}, {"truncated_items", j.truncation.truncated_items},
                   {"answer_tokens_lost", j.truncation.answer_tokens_lost}}},
                 {"outputs",
                  {{"model", summary.model_dir.empty() ? Json(nullptr) : Json(summary.model_dir.string())},
                   {"adapter", summary.adapter_dir.empty() ? Json(nullptr) : Json(summary.adapter_dir.string())},
                   {"adapter_needs_modified_base", t.adapter && t.adapter->base_modified()},
                   {"probe", summary.probe_json.empty() ? Json(nullptr) : Json(summary.probe_json.string())}}},
                 {"result", result}};
  write_file_atomic(c.output_dir / "run.json", record.dump(2) + "\n");
}

}  // namespace

RunSummary run(const RunConfig& c) {
  const auto started = std::chrono::steady_clock::now();
  const std::string started_at = now_utc();
  check_inputs(c);
  FolderLock lock(c.output_dir, std::string(kind_name(c.kind)) + " run");
  remove_stale_temporaries(c.output_dir);
  // Before the run's seed: loading and evaluating a reference draws nothing from its streams.
  const std::unique_ptr<Evaluation> evaluation = prepare_evaluation(c);
  at::manual_seed(c.seed);

  const Inputs in = prepare_inputs(c);
  const std::unique_ptr<Job> job = make_job(c, in);
  const Trainable trainable = select_trainable(c, in, *job);
  RunSummary summary;
  summary.result = train_stage(c, in, *job, trainable, evaluation.get());
  in.model->eval();
  summary.final_eval = job->probabilities(*in.model, static_cast<std::size_t>(std::max<std::int64_t>(c.eval_examples, 0)),
                                          in.pad_id);
  write_outputs(c, in, trainable, summary);
  if (evaluation) summary.eval_summary = evaluation->write_final(*in.model);
  if (c.probe) {
    LETHE_CHECK(!summary.model_dir.empty(), "probe: the run wrote no model folder to probe");
    probe::ProbeOptions p = *c.probe;
    p.model = summary.model_dir;
    p.eval.progress = c.train.progress;
    log_info("probe: the final model against ", p.reference.string(), " (", p.out.string(), ")");
    probe::run_probes(p);
    summary.probe_json = p.out / "PROBE.json";
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  write_record(c, in, *job, trainable, summary, started_at, seconds);
  return summary;
}

}  // namespace lethe::run

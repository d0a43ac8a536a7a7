// finetune / unlearn runs: YAML config (strict), data, model, LoRA, training, outputs.
#include "lethe/run/run.h"

#include <chrono>
#include <ctime>
#include <set>
#include <torch/version.h>

#include "core/json_util.h"
#include "lethe/core/config.h"
#include "lethe/core/error.h"
#include "lethe/core/random.h"
#include "lethe/core/range.h"
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
using train::Schedule;

namespace {

fs::path resolve(const fs::path& base, const std::string& p) {
  if (p.empty()) return {};
  fs::path q(p);
  return q.is_absolute() ? q : base / q;
}

text::PromptTemplate parse_template(const Json& j, const std::string& where) {
  if (j.is_null()) return text::PromptTemplate::named("plain");
  if (j.is_string()) return text::PromptTemplate::named(j.get<std::string>());
  ConfigSection s(j, where);
  text::PromptTemplate t;
  t.name = "custom";
  t.system = s.get<std::string>("system", "");
  t.user_start = s.get<std::string>("user_start", "");
  t.user_end = s.get<std::string>("user_end", "");
  t.assistant_start = s.get<std::string>("assistant_start", "");
  t.assistant_end = s.get<std::string>("assistant_end", "");
  s.done();
  return t;
}

unlearn::Params parse_method_params(const Json& j, const std::string& where) {
  unlearn::Params p;
  for (const auto& [k, v] : j.items()) {
    if (k == "name") continue;
    if (v.is_number()) {
      p[k] = v.get<double>();
    } else if (v.is_string()) {
      p[k] = v.get<std::string>();
    } else if (v.is_array()) {
      std::vector<std::string> list;
      for (const auto& e : v) {
        LETHE_CHECK(e.is_string(), "config: '", where, ".", k, "' must be a list of strings");
        list.push_back(e.get<std::string>());
      }
      p[k] = list;
    } else {
      fail("config: '", where, ".", k, "' must be a number, a string or a list of strings");
    }
  }
  return p;
}

}  // namespace

RunConfig load_run_config(const fs::path& yaml, const std::vector<std::string>& overrides, RunKind kind) {
  Json root = load_yaml_file(yaml);
  LETHE_CHECK(root.is_object(), yaml.string(), ": the config must be a mapping");
  for (const auto& o : overrides) apply_override(root, o);
  const fs::path base = yaml.parent_path();

  RunConfig c;
  c.kind = kind;
  c.resolved_json = root.dump(2);
  c.config_dir = base;
  ConfigSection top(root, "");
  c.model = resolve(base, top.need_path("model"));
  c.from_scratch = top.get<bool>("from_scratch", false);
  c.tokenizer = resolve(base, top.get_path("tokenizer"));
  c.output_dir = resolve(base, top.need_path("output_dir"));
  c.seed = static_cast<std::uint64_t>(top.get<std::int64_t>("seed", 0, Range::count()));
  c.device = top.get<std::string>("device", "cpu");
  (void)parse_device(c.device);  // a device this build cannot use fails now, not after loading
  c.eval_examples = top.get<std::int64_t>("eval_examples", 32, Range::count());

  ConfigSection d = top.sub("data");
  c.data.max_length = d.get<std::int64_t>("max_length", 512, Range::at_least(2).whole());
  c.data.prompt_template = parse_template(d.raw("template"), "data.template");
  const std::string rule = d.get<std::string>("answer_span", "common_prefix");
  LETHE_CHECK(rule == "common_prefix" || rule == "openunlearning",
              "config: 'data.answer_span' must be common_prefix or openunlearning, got '", rule, "'");
  c.data.span_rule = rule == "openunlearning" ? text::SpanRule::kOpenUnlearning : text::SpanRule::kCommonPrefix;
  c.data.prompt_key = d.get<std::string>("prompt_key", "prompt");
  c.data.continuation_key = d.get<std::string>("continuation_key", "gt");
  c.data.text_key = d.get<std::string>("text_key", "text");
  if (kind == RunKind::kFinetune) {
    c.data.train = resolve(base, d.need_path("train"));
    c.data.format = d.get<std::string>("format", "qa");
    c.data.train_text = resolve(base, d.get_path("train_text"));
    LETHE_CHECK(c.data.format == "qa" || c.data.format == "completion" || c.data.format == "text",
                "config: 'data.format' must be qa, completion or text, got '", c.data.format, "'");
  } else {
    c.data.forget = resolve(base, d.need_path("forget"));
    c.data.retain = resolve(base, d.get_path("retain"));
    c.data.idk = resolve(base, d.get_path("idk"));
  }
  d.done();

  if (kind == RunKind::kUnlearn) {
    ConfigSection m = top.sub("method");
    c.method = m.need<std::string>("name");
    c.method_params = parse_method_params(m.json(), "method");
    // Validate now (unknown method / parameter / type) rather than after loading the model.
    (void)unlearn::make_method(c.method, c.method_params);
  } else {
    LETHE_CHECK(!root.contains("method"), "config: 'method' belongs to unlearn configs, not finetune");
  }

  ConfigSection t = top.sub("train");
  TrainerConfig& tc = c.train;
  tc.epochs = t.get<std::int64_t>("epochs", 1, Range::count());
  tc.max_steps = t.get<std::int64_t>("max_steps", 0, Range::count());
  tc.batch_size = t.get<std::int64_t>("batch_size", 4, Range::at_least(1).whole());
  tc.grad_accum = t.get<std::int64_t>("grad_accum", 1, Range::at_least(1).whole());
  tc.max_grad_norm = t.get<double>("max_grad_norm", 1.0, Range::non_negative());
  tc.optimizer.lr = t.get<double>("lr", 1e-5, Range::positive());
  tc.optimizer.weight_decay = t.get<double>("weight_decay", 0.0, Range::non_negative());
  tc.optimizer.beta1 = t.get<double>("beta1", 0.9, Range::unit_right_open());
  tc.optimizer.beta2 = t.get<double>("beta2", 0.999, Range::unit_right_open());
  tc.optimizer.eps = t.get<double>("eps", 1e-8, Range::positive());
  tc.schedule = t.get<std::string>("schedule", "linear");
  {
    const auto& kinds = Schedule::kinds();
    if (std::find(kinds.begin(), kinds.end(), tc.schedule) == kinds.end()) {
      std::string known;
      for (const auto& k : kinds) known += (known.empty() ? "" : ", ") + k;
      fail("config: 'train.schedule' must be one of ", known, ", got '", tc.schedule, "'");
    }
  }
  tc.warmup_steps = t.get<std::int64_t>("warmup_steps", 0, Range::count());
  tc.warmup_ratio = t.get<double>("warmup_ratio", 0.0, Range::unit());
  tc.checkpoint_every = t.get<std::int64_t>("checkpoint_every", 0, Range::count());
  tc.keep_checkpoints = t.get<std::int64_t>("keep_checkpoints", 2, Range::at_least(1).whole());
  tc.eval_every = t.get<std::int64_t>("eval_every", 0, Range::count());
  tc.resume = t.get<bool>("resume", true);
  tc.progress = t.get<bool>("progress", true);
  t.done();
  LETHE_CHECK(tc.epochs > 0 || tc.max_steps > 0, "config: 'train.epochs' or 'train.max_steps' must be positive");

  ConfigSection g = top.sub("guard");
  tc.guard.action = g.get<std::string>("action", tc.guard.action);
  tc.guard.retain_loss_factor = g.get<double>("retain_loss_factor", tc.guard.retain_loss_factor);
  tc.guard.retain_loss_floor = g.get<double>("retain_loss_floor", tc.guard.retain_loss_floor);
  tc.guard.repetition_every = g.get<std::int64_t>("repetition_every", tc.guard.repetition_every);
  tc.guard.repetition_threshold = g.get<double>("repetition_threshold", tc.guard.repetition_threshold);
  g.done();
  tc.guard.validate();

  ConfigSection l = top.sub("lora");
  c.lora = l.get<bool>("enabled", l.json().size() > 0);
  c.lora_config.rank = l.get<std::int64_t>("rank", c.lora_config.rank);
  c.lora_config.alpha = l.get<double>("alpha", c.lora_config.alpha);
  c.lora_config.dropout = l.get<double>("dropout", c.lora_config.dropout);
  c.lora_config.target_regex = l.get<std::string>("target_modules", "");
  c.lora_config.init = l.get<std::string>("init", c.lora_config.init);
  c.lora_merge = l.get<bool>("merge", true);
  l.done();
  c.lora_config.validate();
  LETHE_CHECK(c.lora_config.init != "fila" || kind == RunKind::kUnlearn,
              "config: lora.init: fila needs forget and retain data (unlearn runs)");
  const Json& ev = top.raw("eval");
  if (!ev.is_null()) {
    LETHE_CHECK(ev.is_object(), "config: 'eval' must be a mapping (suite, data, reference, ...)");
    c.eval_section = ev.dump();
  }
  top.done();
  return c;
}

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

// Geometric-mean per-token probability of each example's label tokens, averaged.
double mean_answer_probability(model::CausalLM& m, const std::vector<data::Example>& examples,
                               std::size_t limit, std::int64_t pad_id) {
  torch::NoGradGuard ng;
  const bool training = m.is_training();
  m.eval();
  double total = 0;
  std::size_t count = 0;
  const std::size_t n = std::min(limit, examples.size());
  for (std::size_t i = 0; i < n; i += 8) {
    std::vector<const data::Example*> chunk;
    for (std::size_t j = i; j < std::min(n, i + 8); ++j) chunk.push_back(&examples[j]);
    data::Batch b = data::collate(chunk, pad_id);
    auto lp = model::score_tokens(m, b.input_ids, b.attention_mask, b.labels);
    at::Tensor per = lp.logprobs.sum(-1) / lp.mask.sum(-1).clamp_min(1);
    total += per.exp().sum().item<double>();
    count += chunk.size();
  }
  m.train(training);
  return count ? total / static_cast<double>(count) : 0.0;
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
      parent[key] = canonical_path(resolve(c.config_dir, parent[key].get<std::string>())).string();
    }
  };
  for (const char* k : {"model", "tokenizer", "output_dir"}) canon(j, k);
  if (j.contains("data")) {
    for (const char* k : {"train", "train_text", "forget", "retain", "idk"}) canon(j["data"], k);
  }
  if (j.contains("eval")) {
    for (const char* k : {"data", "reference"}) canon(j["eval"], k);
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

RunSummary run(const RunConfig& c, const RunHooks& hooks) {
  const auto started = std::chrono::steady_clock::now();
  const std::string started_at = now_utc();
  LETHE_CHECK(fs::exists(c.from_scratch ? c.model / "config.json" : c.model), c.model.string(),
              ": no such model folder");
  // Every input before any work: a missing retain file must not surface after the model loaded.
  for (const auto& [key, p] : std::vector<NamedPath>{{"data.train", c.data.train}, {"data.train_text", c.data.train_text},
                                                     {"data.forget", c.data.forget}, {"data.retain", c.data.retain},
                                                     {"data.idk", c.data.idk}}) {
    LETHE_CHECK(p.empty() || fs::is_regular_file(p), p.string(), ": no such file (", key, ")");
  }
  LETHE_CHECK(c.tokenizer.empty() || fs::exists(c.tokenizer), c.tokenizer.string(), ": no such tokenizer (tokenizer)");
  check_output_apart(c.output_dir, "output_dir",
                     {{"model", c.model}, {"tokenizer", c.tokenizer}, {"data.train", c.data.train},
                      {"data.train_text", c.data.train_text}, {"data.forget", c.data.forget},
                      {"data.retain", c.data.retain}, {"data.idk", c.data.idk}});
  // A run folder is new, empty, or one of lethe's own (resumed or rerun); never a user's folder.
  LETHE_CHECK(is_absent_or_empty(c.output_dir) || owned_by_lethe(c.output_dir) ||
                  fs::exists(c.output_dir / "run.json") || fs::exists(c.output_dir / "checkpoints"),
              "output_dir ", c.output_dir.string(),
              " holds files that no lethe run wrote; give a new or empty folder (a run writes model/, "
              "checkpoints/, train_log.jsonl and run.json there)");
  // What will be copied into model/ is checked now, not after training.
  (void)text::check_tokenizer_files(c.tokenizer.empty() ? c.model : c.tokenizer);
  FolderLock lock(c.output_dir, c.kind == RunKind::kFinetune ? "finetune run" : "unlearn run");
  remove_stale_temporaries(c.output_dir);
  at::manual_seed(c.seed);

  // Inputs and their fingerprints.
  Json inputs = Json::object();
  auto fingerprint = [&](const fs::path& p) {
    if (!p.empty() && fs::is_regular_file(p)) inputs[canonical_path(p).string()] = file_fingerprint(p);
  };
  for (const auto& p : {c.data.train, c.data.train_text, c.data.forget, c.data.retain, c.data.idk}) fingerprint(p);
  fingerprint(c.model / "config.json");
  if (!c.from_scratch) {
    if (fs::exists(c.model / "model.safetensors")) fingerprint(c.model / "model.safetensors");
  }

  const fs::path tok_path = c.tokenizer.empty() ? c.model : c.tokenizer;
  auto tok = text::load_tokenizer(tok_path);
  const std::int64_t pad_id = text::padding_id(*tok);

  model::LoadOptions lo;
  lo.device = parse_device(c.device);
  std::shared_ptr<model::CausalLM> m =
      c.from_scratch ? model::create_model(model::read_config(c.model), lo, c.seed) : model::load_model(c.model, lo);
  LETHE_CHECK(tok->vocab_size() <= m->config().vocab_size, tok_path.string(), ": the tokenizer has ",
              tok->vocab_size(), " tokens but the model only ", m->config().vocab_size);
  m->train();

  // Data: sequences within the model's positions (one left for the EOS of a QA item).
  const std::int64_t fits = m->config().max_position_embeddings - 1;
  if (c.data.max_length > fits) {
    log_info("data.max_length ", c.data.max_length, " is beyond this model's ", m->config().max_position_embeddings,
             " positions: sequences are cut at ", fits, " tokens (what that cuts from answers is reported)");
  }
  const auto n = static_cast<std::size_t>(std::max<std::int64_t>(std::min(c.data.max_length, fits), 2));
  std::vector<data::Example> train_set, forget, retain, alternate;
  std::unique_ptr<unlearn::Method> method;
  text::Truncation truncation;
  if (c.kind == RunKind::kFinetune) {
    train_set = finetune_examples(c, *tok, n, truncation);
  } else {
    method = unlearn::make_method(c.method, c.method_params);
    const auto forget_records = data::read_qa(c.data.forget);
    forget = data::qa_examples(*tok, c.data.prompt_template, forget_records, n, c.data.span_rule, &truncation);
    if (!c.data.retain.empty()) {
      retain = data::qa_examples(*tok, c.data.prompt_template, data::read_qa(c.data.retain), n, c.data.span_rule,
                                 &truncation);
    }
    LETHE_CHECK(!method->needs_retain() || !retain.empty(), "method ", method->name(),
                " needs a retain set: set data.retain");
    if (method->needs_alternate()) {
      LETHE_CHECK(!c.data.idk.empty(), "method ", method->name(), " needs refusal answers: set data.idk");
      alternate = data::idk_examples(*tok, c.data.prompt_template, forget_records,
                                     data::read_texts(c.data.idk, "text"), c.seed, n, &truncation);
    }
  }
  if (truncation.truncated_items > 0) {
    log_warn("data.max_length ", c.data.max_length, " truncated the answers of ", truncation.truncated_items, " of ",
             truncation.items, " QA items (", truncation.answer_tokens_lost,
             " answer tokens lost); training sees only the tokens kept");
  }

  // Reference copy before any adapter or FILA changes the model.
  std::shared_ptr<model::CausalLM> reference;
  if (method && method->needs_reference()) {
    reference = model::clone_model(*m);
    reference->eval();
    for (auto& p : reference->parameters()) p.set_requires_grad(false);
  }

  // What trains.
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::shared_ptr<LoraAdapter> adapter;
  if (c.lora) {
    LETHE_CHECK(!method || method->trainable_parameters().empty(), "method ", c.method,
                " trains selected base parameters; run it without lora");
    adapter = LoraAdapter::attach(*m, c.lora_config, c.seed);
    if (c.lora_config.init == "fila") {
      LETHE_CHECK(!retain.empty(), "lora.init: fila needs a retain set (data.retain)");
      std::vector<data::Batch> fb, rb;
      for (std::size_t i = 0; i < forget.size(); i += static_cast<std::size_t>(c.train.batch_size)) {
        std::vector<const data::Example*> chunk;
        for (std::size_t j = i; j < std::min(forget.size(), i + static_cast<std::size_t>(c.train.batch_size)); ++j)
          chunk.push_back(&forget[j]);
        fb.push_back(data::collate(chunk, pad_id));
      }
      for (std::size_t k = 0; k < fb.size(); ++k) {
        std::vector<const data::Example*> chunk;
        for (std::int64_t j = 0; j < fb[k].size(); ++j) {
          chunk.push_back(&retain[data::paired_retain_index(k * static_cast<std::size_t>(c.train.batch_size) + j,
                                                            retain.size(), c.seed, 0)]);
        }
        rb.push_back(data::collate(chunk, pad_id));
      }
      adapter->fila_init(*m, fb, rb);
    }
    params = adapter->named_parameters();
  } else if (method && !method->trainable_parameters().empty()) {
    std::vector<std::unique_ptr<text::Regex>> res;
    for (const auto& r : method->trainable_parameters()) res.push_back(std::make_unique<text::Regex>(r, "method.trainable_params"));
    for (auto& item : m->named_parameters()) {
      const bool hit = std::any_of(res.begin(), res.end(), [&](const auto& re) { return re->full_match(item.key()); });
      item.value().set_requires_grad(hit);
      if (hit) params.emplace_back(item.key(), item.value());
    }
    LETHE_CHECK(!params.empty(), "method ", c.method, ": no parameter matches its trainable_params");
  } else {
    for (auto& item : m->named_parameters()) params.emplace_back(item.key(), item.value());
  }

  // Training.
  TrainerConfig tc = c.train;
  tc.run_dir = c.output_dir;
  tc.seed = c.seed;
  {
    std::string fp = fingerprint_config(c).dump();
    for (const auto& [k, v] : inputs.items()) fp += k + v.get<std::string>();
    tc.fingerprint = std::to_string(fnv1a64(fp.data(), fp.size()));
  }
  std::unique_ptr<Objective> objective;
  if (c.kind == RunKind::kFinetune) {
    objective = std::make_unique<FinetuneObjective>(*m, train_set, pad_id);
  } else {
    objective = std::make_unique<unlearn::UnlearnObjective>(*m, reference.get(), *method, forget, retain, alternate,
                                                   pad_id, c.seed);
  }
  const auto limit = static_cast<std::size_t>(std::max<std::int64_t>(c.eval_examples, 0));
  auto probabilities = [&]() {
    std::map<std::string, double> r;
    if (c.kind == RunKind::kFinetune) {
      r["train_prob"] = mean_answer_probability(*m, train_set, limit, pad_id);
    } else {
      r["forget_prob"] = mean_answer_probability(*m, forget, limit, pad_id);
      if (!retain.empty()) r["retain_prob"] = mean_answer_probability(*m, retain, limit, pad_id);
    }
    return r;
  };
  // The trainer calls back every tc.eval_every steps and at the last one; each part keeps its own
  // period (probabilities: train.eval_every; the caller's hook: hooks.every).
  const std::int64_t prob_every = tc.eval_every;
  const bool periodic = hooks.periodic && hooks.every > 0;
  if (periodic) tc.eval_every = prob_every > 0 ? std::gcd(prob_every, hooks.every) : hooks.every;
  const std::int64_t total_steps = planned_steps(tc, objective->size());
  EvalCallback eval = [&](std::int64_t step) {
    std::map<std::string, double> r;
    if (prob_every > 0 && (step % prob_every == 0 || step == total_steps)) r = probabilities();
    if (periodic && step % hooks.every == 0) {
      for (const auto& [k, v] : hooks.periodic(*m, step)) r[k] = v;
    }
    return r;
  };
  const auto& probe_set = c.kind == RunKind::kFinetune ? train_set : (retain.empty() ? forget : retain);
  Probe probe = [&]() { return repetition_share(*m, probe_set, pad_id); };
  log_info(c.kind == RunKind::kFinetune ? "finetune" : "unlearn (" + c.method + ")", ": ", params.size(),
           " trainable tensors, ", planned_steps(tc, objective->size()), " steps, output ", c.output_dir.string());

  RunSummary summary;
  summary.result = train::train(params, *objective, tc, eval, probe, adapter ? adapter->generators() : NamedGenerators{});
  m->eval();
  summary.final_eval = probabilities();

  // Outputs.
  // Each output folder is built beside its place and renamed into it when complete; the run
  // owns them, so a rerun replaces them as a whole.
  auto save_full = [&](const fs::path& dir) {
    StagedFolder out(dir, /*replace=*/true, "output_dir/model");
    model::write_model(*m, out.path());
    text::install_tokenizer(tok_path, out.path(), m->config().vocab_size);
    out.commit();
  };
  if (adapter) {
    summary.adapter_dir = c.output_dir / "adapter";
    StagedFolder out(summary.adapter_dir, /*replace=*/true, "output_dir/adapter");
    adapter->save(out.path(), c.model.string());
    out.commit();
    if (c.lora_merge || adapter->base_modified()) {
      adapter->merge();
      summary.model_dir = c.output_dir / "model";
      save_full(summary.model_dir);
      adapter->unmerge();
    }
  } else {
    summary.model_dir = c.output_dir / "model";
    save_full(summary.model_dir);
  }

  if (hooks.at_end) {
    m->eval();
    hooks.at_end(*m);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  Json result = {{"steps", summary.result.steps},
                 {"resumed_from", summary.result.resumed_from},
                 {"stopped_by_guard", summary.result.stopped},
                 {"stop_reason", summary.result.stop_reason},
                 {"last_terms", summary.result.last_terms},
                 {"final_eval", summary.final_eval},
                 {"seconds", seconds}};
  Json record = {{"format_version", 1},
                 {"kind", c.kind == RunKind::kFinetune ? "finetune" : "unlearn"},
                 {"lethe_version", version()},
                 {"torch_version", TORCH_VERSION},
                 {"threads", threads()},
                 {"started", started_at},
                 {"finished", now_utc()},
                 {"config", Json::parse(c.resolved_json)},
                 {"inputs", inputs},
                 {"truncation",
                  {{"items", truncation.items}, {"truncated_items", truncation.truncated_items},
                   {"answer_tokens_lost", truncation.answer_tokens_lost}}},
                 {"outputs",
                  {{"model", summary.model_dir.empty() ? Json(nullptr) : Json(summary.model_dir.string())},
                   {"adapter", summary.adapter_dir.empty() ? Json(nullptr) : Json(summary.adapter_dir.string())},
                   {"adapter_needs_modified_base", adapter && adapter->base_modified()}}},
                 {"result", result}};
  write_file_atomic(c.output_dir / "run.json", record.dump(2) + "\n");
  return summary;
}

}  // namespace lethe::run

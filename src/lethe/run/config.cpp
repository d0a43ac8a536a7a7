// Run configs: a YAML file (or a config tree a program builds) into a typed RunConfig. Every key
// is read through core/config.h's strict section reader, the `eval:` section included.
#include "lethe/run/run.h"

#include "lethe/core/config.h"
#include "lethe/core/error.h"
#include "lethe/core/range.h"
#include "lethe/core/runtime.h"
#include "lethe/data/dataset.h"
#include "lethe/model/dtype.h"
#include "lethe/train/optimizer.h"

namespace lethe::run {
namespace fs = std::filesystem;
using train::Schedule;

namespace {

fs::path resolve(const fs::path& base, const std::string& p) {
  if (p.empty()) return {};
  fs::path q(p);
  return q.is_absolute() ? q : base / q;
}

// data.template: a name (plain, llama2-chat, llama3-chat; chat or auto: the chat template of
// `tokenizer_dir`), {name, system} (a named template with a system prompt), or the tags.
text::PromptTemplate parse_template(const Json& j, const std::string& where, const fs::path& tokenizer_dir) {
  if (j.is_null()) return text::PromptTemplate::named("plain");
  if (j.is_string()) return text::PromptTemplate::resolve(j.get<std::string>(), tokenizer_dir);
  ConfigSection s(j, where);
  if (s.has("name")) {
    text::PromptTemplate t = text::PromptTemplate::resolve(s.get<std::string>("name", ""), tokenizer_dir);
    t.system = s.get<std::string>("system", t.system);
    s.done();
    return t;
  }
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
  return parse_run_config(root, yaml.parent_path(), kind);
}

RunConfig parse_run_config(const Json& root, const fs::path& base, RunKind kind) {
  LETHE_CHECK(root.is_object(), "config: the config must be a mapping");
  RunConfig c;
  c.kind = kind;
  c.resolved_json = root.dump(2);
  c.config_dir = base;
  ConfigSection top(root, "");
  // `model: DIR`, or `model: {path: DIR, dtype: bfloat16}` for the dtype frozen weights are held in.
  if (root.contains("model") && root["model"].is_object()) {
    ConfigSection m = top.sub("model");
    c.model = resolve(base, m.need_path("path"));
    c.model_dtype = model::parse_dtype(m.get<std::string>("dtype", "float32"), "config: 'model.dtype'");
    m.done();
  } else {
    c.model = resolve(base, top.need_path("model"));
  }
  c.from_scratch = top.get<bool>("from_scratch", false);
  c.tokenizer = resolve(base, top.get_path("tokenizer"));
  c.output_dir = resolve(base, top.need_path("output_dir"));
  c.seed = static_cast<std::uint64_t>(top.get<std::int64_t>("seed", 0, Range::count()));
  c.device = top.get<std::string>("device", "cpu");
  (void)parse_device(c.device);  // a device this build cannot use fails now, not after loading
  c.eval_examples = top.get<std::int64_t>("eval_examples", 32, Range::count());

  ConfigSection d = top.sub("data");
  c.data.max_length = d.get<std::int64_t>("max_length", 512, Range::at_least(2).whole());
  c.data.prompt_template = parse_template(d.raw("template"), "data.template", c.tokenizer.empty() ? c.model : c.tokenizer);
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
    c.data.insert_text = resolve(base, d.get_path("insert_text"));
    c.data.insert_timing = d.get<std::string>("insert_timing", "spread");
    const auto& timings = data::insertion_timings();
    LETHE_CHECK(std::find(timings.begin(), timings.end(), c.data.insert_timing) != timings.end(),
                "config: 'data.insert_timing' must be spread, first or last, got '", c.data.insert_timing, "'");
    LETHE_CHECK(!d.has("insert_timing") || !c.data.insert_text.empty(),
                "config: 'data.insert_timing' without 'data.insert_text'");
    LETHE_CHECK(c.data.format == "qa" || c.data.format == "completion" || c.data.format == "text",
                "config: 'data.format' must be qa, completion or text, got '", c.data.format, "'");
  } else {
    c.data.forget = resolve(base, d.get_path("forget"));
    c.data.forget_text = resolve(base, d.get_path("forget_text"));
    LETHE_CHECK(!c.data.forget.empty() || !c.data.forget_text.empty(),
                "config: an unlearn run needs data.forget (QA) or data.forget_text (raw text), or both");
    c.data.retain = resolve(base, d.get_path("retain"));
    c.data.idk = resolve(base, d.get_path("idk"));
    c.data.holdout = resolve(base, d.get_path("holdout"));
  }
  d.done();

  bool observes_activations = false;
  if (kind == RunKind::kUnlearn) {
    ConfigSection m = top.sub("method");
    c.method = m.need<std::string>("name");
    c.method_params = parse_method_params(m.json(), "method");
    // Validate now (unknown method / parameter / type) rather than after loading the model.
    observes_activations = unlearn::make_method(c.method, c.method_params)->observes_activations();
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
  tc.gradient_checkpointing = t.get<bool>("gradient_checkpointing", false);
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
  c.stop_rule = t.get<std::string>("stop_rule", "");
  LETHE_CHECK(c.stop_rule.empty() || c.stop_rule == "holdout_nll",
              "config: 'train.stop_rule' must be holdout_nll (or absent), got '", c.stop_rule, "'");
  LETHE_CHECK(c.stop_rule.empty() || kind == RunKind::kUnlearn, "config: 'train.stop_rule' belongs to unlearn configs");
  LETHE_CHECK(c.stop_rule.empty() || !c.data.holdout.empty(),
              "config: 'train.stop_rule: holdout_nll' needs 'data.holdout' (QA of people the model never saw)");
  LETHE_CHECK(!t.has("stop_every") || !c.stop_rule.empty(),
              "config: 'train.stop_every' without a 'train.stop_rule'");
  tc.stop_every = c.stop_rule.empty() ? 0 : t.get<std::int64_t>("stop_every", 5, Range::at_least(1).whole());
  tc.resume = t.get<bool>("resume", true);
  tc.progress = t.get<bool>("progress", true);
  t.done();
  LETHE_CHECK(tc.epochs > 0 || tc.max_steps > 0, "config: 'train.epochs' or 'train.max_steps' must be positive");
  LETHE_CHECK(c.data.insert_text.empty() || (tc.max_steps == 0 && tc.epochs > 0),
              "config: 'data.insert_text' schedules its copies over 'train.epochs'; it cannot be used with 'train.max_steps'");

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
  LETHE_CHECK(c.lora_config.init != "fila" || !model::is_half(c.model_dtype),
              "config: lora.init: fila needs the gradients of the base weights (Fisher importances), which lethe "
              "computes only for weights held in float32 or float64, not model.dtype ", model::dtype_name(c.model_dtype));
  if (tc.gradient_checkpointing) {
    // The recomputation must see exactly what the forward saw.
    LETHE_CHECK(!observes_activations, "config: train.gradient_checkpointing cannot be used with method ", c.method,
                ", whose loss reads hidden activations the recomputation would not give back");
    LETHE_CHECK(!c.lora || c.lora_config.dropout == 0, "config: train.gradient_checkpointing needs lora.dropout 0 (got ",
                c.lora_config.dropout, "): the recomputation would draw new dropout masks");
  }
  const Json& ev = top.raw("eval");
  const Json& pr = top.raw("probe");
  top.done();
  if (!ev.is_null()) {
    LETHE_CHECK(ev.is_object(), "config: 'eval' must be a mapping (suite, data, reference, ...)");
    // Checked now (suite, metrics, files, reference form), before any training.
    c.eval = eval::eval_options_from_config(ev, base, c.output_dir / "eval", c.eval_every);
    c.eval->prompt_template = c.data.prompt_template;
    c.eval->device = c.device;
    c.eval->dtype = model::dtype_name(c.model_dtype);  // a reference model folder is frozen: model.dtype
  }
  if (!pr.is_null()) {
    LETHE_CHECK(kind == RunKind::kUnlearn, "config: 'probe' belongs in unlearn configs (it probes what unlearning did)");
    LETHE_CHECK(pr.is_object(), "config: 'probe' must be a mapping (reference, probes, relearn, in_context, ...)");
    LETHE_CHECK(!c.lora || c.lora_merge, "config: 'probe' needs the merged model; leave lora.merge at true");
    probe::ProbeOptions d;
    d.target = c.model;  // the model before unlearning
    if (c.eval) {
      d.eval.data = c.eval->data;
      d.eval.suite = c.eval->suite;
      d.eval.forget_split = c.eval->forget_split;
    }
    d.eval.prompt_template = c.data.prompt_template;
    d.eval.max_length = c.data.max_length;
    d.eval.device = c.device;
    d.eval.seed = c.seed;
    d.eval.tokenizer = c.tokenizer;
    d.out = c.output_dir / "probe";
    d.force = true;  // the run's own folder: a rerun replaces it
    c.probe = probe::probe_options_from_config(pr, base, d);
  }
  return c;
}

}  // namespace lethe::run

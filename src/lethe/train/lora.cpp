// LoRA adapters on Linear / Conv1D layers, PEFT files, and FILA initialisation.
#include "lethe/train/lora.h"

#include <cmath>
#include <map>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/range.h"
#include "lethe/core/file.h"
#include "lethe/io/checkpoint.h"
#include "lethe/model/load.h"
#include "lethe/model/score.h"
#include "lethe/train/objective.h"
#include "lethe/model/blocks.h"
#include "text/regex.h"

namespace lethe::train {
namespace fs = std::filesystem;

struct LoraAdapter::Slot {
  std::string name;  // module name, e.g. model.layers.0.self_attn.q_proj
  model::LinearImpl* linear = nullptr;
  model::Conv1DImpl* conv = nullptr;
  model::LoraHook hook;
  at::Generator generator;

  at::Tensor& base_weight() { return linear ? linear->weight : conv->weight; }
  std::int64_t in() { return linear ? linear->weight.size(1) : conv->weight.size(0); }
  std::int64_t out() { return linear ? linear->weight.size(0) : conv->weight.size(1); }
  // scale · B A in the base weight's layout.
  at::Tensor delta() {
    at::Tensor d = at::matmul(hook.b, hook.a) * hook.scale;  // (out, in)
    return linear ? d : d.t();
  }
  void set_hook(model::LoraHook* h) {
    if (linear) linear->lora = h;
    if (conv) conv->lora = h;
  }
};

std::string default_lora_targets(const model::CausalLM& model) {
  return model::default_lora_targets(model.config().model_type);
}

LoraAdapter::~LoraAdapter() {
  for (auto& s : slots_) s->set_hook(nullptr);
}

void LoraConfig::validate() const {
  check_range("lora.rank", static_cast<double>(rank), Range::at_least(1).whole());
  check_range("lora.alpha", alpha, Range::positive());
  check_range("lora.dropout", dropout, Range::unit_right_open());
  LETHE_CHECK(init == "default" || init == "fila", "'lora.init' must be default or fila, got '", init, "'");
}

double LoraAdapter::scale() const { return config_.alpha / static_cast<double>(config_.rank); }

std::shared_ptr<LoraAdapter> LoraAdapter::attach(model::CausalLM& m, const LoraConfig& cfg, std::uint64_t seed) {
  cfg.validate();
  std::shared_ptr<LoraAdapter> a(new LoraAdapter());
  a->config_ = cfg;
  const std::string pattern = cfg.target_regex.empty() ? default_lora_targets(m) : cfg.target_regex;
  text::Regex re(pattern, "lora.target_modules");
  at::Generator gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard ng;
  std::uint64_t k = 0;
  for (const auto& item : m.named_modules("", /*include_self=*/false)) {
    auto* lin = dynamic_cast<model::LinearImpl*>(item.value().get());
    auto* conv = dynamic_cast<model::Conv1DImpl*>(item.value().get());
    if ((lin == nullptr && conv == nullptr) || !re.full_match(item.key())) continue;
    auto s = std::make_unique<Slot>();
    s->name = item.key();
    s->linear = lin;
    s->conv = conv;
    // Adapters are trainable, so fp32 (the compute dtype) over a half-precision base.
    const auto opts = s->base_weight().options().dtype(model::compute_dtype_for(s->base_weight().scalar_type()));
    LETHE_CHECK(cfg.rank <= std::min(s->in(), s->out()), "lora.rank ", cfg.rank, " exceeds the size of ",
                item.key(), " (", s->out(), " x ", s->in(), ")");
    // PEFT's init: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)); B = 0.
    const double bound = 1.0 / std::sqrt(static_cast<double>(s->in()));
    s->hook.a = at::empty({cfg.rank, s->in()}, at::kFloat).uniform_(-bound, bound, gen).to(opts);
    s->hook.b = at::zeros({s->out(), cfg.rank}, opts);
    s->hook.a.set_requires_grad(true);
    s->hook.b.set_requires_grad(true);
    s->hook.scale = a->scale();
    s->hook.dropout = cfg.dropout;
    s->generator = at::detail::createCPUGenerator(seed ^ (0xD0D0ULL + k++));
    s->hook.generator = &s->generator;
    s->set_hook(&s->hook);
    a->slots_.push_back(std::move(s));
  }
  LETHE_CHECK(!a->slots_.empty(), "lora: no module of this ", m.config().model_type,
              " model matches '", pattern, "'");
  for (auto& p : m.parameters()) p.set_requires_grad(false);
  return a;
}

std::vector<std::pair<std::string, at::Tensor>> LoraAdapter::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& s : slots_) {
    out.emplace_back(s->name + ".lora_A.weight", s->hook.a);
    out.emplace_back(s->name + ".lora_B.weight", s->hook.b);
  }
  return out;
}

std::vector<std::string> LoraAdapter::module_names() const {
  std::vector<std::string> out;
  for (const auto& s : slots_) out.push_back(s->name);
  return out;
}

model::TensorFilter LoraAdapter::merged_filter() const {
  std::map<std::string, Slot*> by_weight;
  for (const auto& s : slots_) by_weight[s->name + ".weight"] = s.get();
  return [by_weight](const std::string& name, const at::Tensor& t) {
    auto it = by_weight.find(name);
    if (it == by_weight.end() || !it->second->hook.enabled) return t;
    const at::Tensor d = it->second->delta();
    return t.to(d.scalar_type()) + d;
  };
}

void LoraAdapter::merge() {
  if (merged_) return;
  torch::NoGradGuard ng;
  for (auto& s : slots_) {
    s->base_weight().add_(s->delta());
    s->hook.enabled = false;
  }
  merged_ = true;
}

void LoraAdapter::unmerge() {
  if (!merged_) return;
  torch::NoGradGuard ng;
  for (auto& s : slots_) {
    s->base_weight().sub_(s->delta());
    s->hook.enabled = true;
  }
  merged_ = false;
}

void LoraAdapter::detach(bool merge_first) {
  if (merge_first) merge();
  for (auto& s : slots_) s->set_hook(nullptr);
  slots_.clear();
}

std::vector<std::pair<std::string, at::Generator*>> LoraAdapter::generators() {
  std::vector<std::pair<std::string, at::Generator*>> out;
  for (auto& s : slots_) out.emplace_back("lora." + s->name, &s->generator);
  return out;
}

void LoraAdapter::save(const fs::path& dir, const std::string& base_model) const {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  Json targets = Json::array();
  for (const auto& s : slots_) {
    tensors.emplace_back("base_model.model." + s->name + ".lora_A.weight", s->hook.a);
    tensors.emplace_back("base_model.model." + s->name + ".lora_B.weight", s->hook.b);
  }
  // PEFT matches a string target_modules with re.fullmatch against module names.
  const bool conv = !slots_.empty() && slots_.front()->conv != nullptr;
  Json cfg = {{"peft_type", "LORA"},
              {"target_modules", ""},
              {"task_type", "CAUSAL_LM"},
              {"r", config_.rank},
              {"lora_alpha", config_.alpha},
              {"lora_dropout", config_.dropout},
              {"bias", "none"},
              {"fan_in_fan_out", conv},
              {"inference_mode", true},
              {"init_lora_weights", true},
              {"modules_to_save", nullptr},
              {"base_model_name_or_path", base_model}};
  std::string names;
  for (const auto& s : slots_) names += (names.empty() ? "" : "|") + text::regex_escape(s->name);
  cfg["target_modules"] = "(" + names + ")";
  io::save_safetensors(dir / "adapter_model.safetensors", tensors);
  // adapter_config.json holds only PEFT's keys: peft's LoraConfig(**config) refuses any other
  // (peft 0.10: "unexpected keyword argument 'lethe_base_modified'"). lethe's notes go beside it.
  write_file_atomic(dir / "adapter_config.json", cfg.dump(2) + "\n");
  const Json notes = {{"format_version", 1}, {"init", config_.init}, {"base_modified", base_modified_}};
  write_file_atomic(dir / kLetheAdapterFile, notes.dump(2) + "\n");
}

std::shared_ptr<LoraAdapter> LoraAdapter::load(model::CausalLM& m, const fs::path& dir) {
  const fs::path cfg_path = dir / "adapter_config.json";
  Json cfg = parse_json_file(cfg_path);
  const std::string where = cfg_path.string();
  LETHE_CHECK(json_optional<std::string>(cfg, "peft_type", "LORA", where) == "LORA", where,
              ": only LORA adapters are supported");
  LoraConfig c;
  c.rank = json_required<std::int64_t>(cfg, "r", where);
  c.alpha = json_required<double>(cfg, "lora_alpha", where);
  c.dropout = json_optional<double>(cfg, "lora_dropout", 0.0, where);
  LETHE_CHECK(!json_optional<bool>(cfg, "use_rslora", false, where) &&
                  !json_optional<bool>(cfg, "use_dora", false, where),
              where, ": rsLoRA / DoRA adapters are not supported");
  io::SafetensorsFile st(dir / "adapter_model.safetensors");
  // Target the modules the file has tensors for.
  std::string names;
  for (const auto& t : st.header().tensors) {
    const std::string prefix = "base_model.model.";
    const std::string suffix = ".lora_A.weight";
    if (t.name.rfind(prefix, 0) == 0 && t.name.size() > suffix.size() &&
        t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string mod = t.name.substr(prefix.size(), t.name.size() - prefix.size() - suffix.size());
      names += (names.empty() ? "" : "|") + text::regex_escape(mod);
    }
  }
  LETHE_CHECK(!names.empty(), (dir / "adapter_model.safetensors").string(), ": no lora_A tensors");
  c.target_regex = "(" + names + ")";
  auto a = attach(m, c, 0);
  torch::NoGradGuard ng;
  std::size_t used = 0;
  for (auto& s : a->slots_) {
    for (auto [suffix, dst] : {std::pair<const char*, at::Tensor*>{".lora_A.weight", &s->hook.a},
                               std::pair<const char*, at::Tensor*>{".lora_B.weight", &s->hook.b}}) {
      st.read_into("base_model.model." + s->name + suffix, *dst);
      ++used;
    }
  }
  LETHE_CHECK(used == st.header().tensors.size(), (dir / "adapter_model.safetensors").string(),
              ": holds tensors that are not LoRA A/B weights of this model (only A/B are supported)");
  return a;
}

void LoraAdapter::fila_init(model::CausalLM& m, const std::vector<data::Batch>& forget,
                            const std::vector<data::Batch>& retain) {
  LETHE_CHECK(!forget.empty() && !retain.empty(), "FILA needs forget and retain batches");
  for (auto& s : slots_) {
    LETHE_CHECK(!model::is_half(s->base_weight().scalar_type()), "lora.init: fila needs the gradients of the base weights "
                "(Fisher importances), and ", s->name, " is stored in ", c10::toString(s->base_weight().scalar_type()),
                ", which lethe keeps frozen: load the model in float32 (model.dtype) for FILA");
  }
  // Fisher importances of the adapted base weights: Σ_batches grad² · (label tokens), divided by
  // the total label tokens (LoKU's measure_importance).
  std::vector<at::Tensor> fisher_f, fisher_r;
  for (auto& s : slots_) {
    fisher_f.push_back(at::zeros_like(s->base_weight(), at::kFloat));
    fisher_r.push_back(at::zeros_like(s->base_weight(), at::kFloat));
    s->hook.enabled = false;
    s->base_weight().set_requires_grad(true);
  }
  auto accumulate = [&](const std::vector<data::Batch>& batches, std::vector<at::Tensor>& fisher) {
    double count = 0;
    for (const auto& b : batches) {
      for (auto& s : slots_) s->base_weight().mutable_grad().reset();
      at::Tensor loss = model::causal_lm_loss(logits_of(m, b), b.labels);
      loss.backward();
      const double n = static_cast<double>(b.loss_tokens());
      torch::NoGradGuard ng;
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        fisher[i].add_(slots_[i]->base_weight().grad().to(at::kFloat).pow(2) * n);
      }
      count += n;
    }
    for (auto& f : fisher) f.div_(count);
  };
  const bool was_training = m.is_training();
  m.train();
  accumulate(forget, fisher_f);
  accumulate(retain, fisher_r);
  m.train(was_training);
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = *slots_[i];
    s.base_weight().mutable_grad().reset();
    s.base_weight().set_requires_grad(false);
    at::Tensor importance = fisher_f[i] / (fisher_r[i] + 1e-5);
    at::Tensor w = s.linear ? s.base_weight().to(at::kFloat) : s.base_weight().to(at::kFloat).t();  // (out, in)
    if (s.conv) importance = importance.t();
    at::Tensor row = importance.sum(1).sqrt();  // (out)
    auto [u, sv, vh] = at::linalg_svd(row.unsqueeze(1) * w, /*full_matrices=*/false);
    const std::int64_t r = config_.rank;
    at::Tensor su = (sv.narrow(0, 0, r) / s.hook.scale).sqrt();
    at::Tensor a = (vh.narrow(0, 0, r).t() * su).t();                            // (r, in)
    at::Tensor b = (1.0 / (row + 1e-5)).unsqueeze(1) * (u.narrow(1, 0, r) * su);  // (out, r)
    s.hook.a.copy_(a);
    s.hook.b.copy_(b);
    s.base_weight().sub_(s.delta());
    s.hook.enabled = true;
  }
  base_modified_ = true;
}

}  // namespace lethe::train

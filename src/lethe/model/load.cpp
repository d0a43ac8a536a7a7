// Model folders: config.json <-> ModelConfig, strict weight loading, and saving.
#include "lethe/model/load.h"

#include <atomic>
#include <map>
#include <set>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/io/checkpoint.h"
#include "lethe/io/llama2c.h"
#include "lethe/model/blocks.h"
#include "model/arch/arch.h"

namespace lethe::model {
namespace fs = std::filesystem;

namespace {

std::string shape_str(c10::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

std::string dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return "float32";
    case c10::kBFloat16: return "bfloat16";
    case c10::kHalf: return "float16";
    case c10::kDouble: return "float64";
    default: fail("models cannot be stored in dtype ", c10::toString(t));
  }
}

c10::ScalarType parse_dtype(const std::string& name, const std::string& what) {
  for (auto t : {c10::kFloat, c10::kBFloat16, c10::kHalf, c10::kDouble}) {
    if (name == dtype_name(t)) return t;
  }
  fail(what, " must be float32, bfloat16, float16 or float64, got '", name, "'");
}

ModelConfig parse_config(const std::string& text, const std::string& source) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    fail(source, ": not valid JSON (", e.what(), ")");
  }
  LETHE_CHECK(j.is_object(), source, ": config must be a JSON object");
  const auto type = json_required<std::string>(j, "model_type", source);
  const ArchSpec& arch = find_arch(type, source);
  ModelConfig c = arch.parse(j, source);
  c.model_type = type;
  validate(c, source);
  c.source_json = text;
  return c;
}

void check_model_folder(const fs::path& dir) {
  std::error_code ec;
  LETHE_CHECK(fs::exists(dir, ec), dir.string(), ": no such model folder");
  LETHE_CHECK(fs::is_directory(dir, ec), dir.string(), ": not a model folder (a file; give the folder that holds config.json and the weights)");
  fs::path name = dir.filename().empty() ? dir.parent_path().filename() : dir.filename();
  LETHE_CHECK(!is_temporary_name(name.string()), dir.string(),
              ": an incomplete folder left by an interrupted lethe write, not a model (remove it)");
  LETHE_CHECK(fs::exists(dir / "config.json", ec), dir.string(), ": not a model folder (no config.json)");
}

ModelConfig read_config(const fs::path& path) {
  fs::path file = fs::is_directory(path) ? path / "config.json" : path;
  LETHE_CHECK(fs::exists(file), file.string(), ": no such file (a model folder needs config.json)");
  ModelConfig c = parse_config(read_file(file), file.string());
  fs::path gen = file.parent_path() / "generation_config.json";
  if (fs::exists(gen)) {
    std::string text = read_file(gen);
    try {
      if (!Json::accept(text)) fail(gen.string(), ": not valid JSON");
    } catch (const Json::exception& e) {
      fail(gen.string(), ": not valid JSON (", e.what(), ")");
    }
    c.generation_config_json = text;
  }
  return c;
}

std::string config_to_json(const ModelConfig& c, c10::ScalarType dtype) {
  Json j = Json::object();
  if (!c.source_json.empty()) {
    try {
      j = Json::parse(c.source_json);
    } catch (const Json::exception&) {
      j = Json::object();
    }
  }
  const ArchSpec& arch = find_arch(c.model_type);
  arch.write(c, j);
  j["model_type"] = c.model_type;
  write_special_ids(c, j);
  j["torch_dtype"] = dtype_name(dtype);
  return j.dump(2) + "\n";
}

std::shared_ptr<CausalLM> build_model(const ModelConfig& config, c10::ScalarType dtype) {
  validate(config, "model config");
  (void)dtype_name(dtype);  // a dtype models cannot be stored in is an error here
  ParameterDtypeScope scope(dtype);
  return find_arch(config.model_type).build(config);
}

std::shared_ptr<CausalLM> clone_model(const CausalLM& model, std::optional<c10::ScalarType> dtype) {
  std::shared_ptr<CausalLM> copy = build_model(model.config(), dtype.value_or(model.storage_dtype()));
  copy->to(model.head_weight().device());
  torch::NoGradGuard ng;
  auto src = model.named_parameters();
  for (auto& item : copy->named_parameters()) item.value().copy_(src[item.key()]);
  copy->train(model.is_training());
  return copy;
}

std::shared_ptr<CausalLM> share_weights(const CausalLM& model) {
  std::shared_ptr<CausalLM> view = build_model(model.config(), model.storage_dtype());
  torch::NoGradGuard ng;
  auto src = model.named_parameters();
  for (auto& item : view->named_parameters()) {
    item.value().set_data(src[item.key()]);
    item.value().set_requires_grad(false);
  }
  view->eval();
  return view;
}

std::shared_ptr<CausalLM> create_model(const ModelConfig& config, const LoadOptions& options,
                                       std::uint64_t seed) {
  std::shared_ptr<CausalLM> model = build_model(config, options.dtype);
  model->init_weights(seed);
  model->to(options.device);
  model->eval();
  return model;
}

namespace {

// Strict loading shared by every weight source: `shape_of(name)` gives a source tensor's shape
// and whether it is floating point; `copy_into(name, param)` fills a parameter.
template <typename ShapeOf, typename CopyInto>
void load_strict(CausalLM& model, const std::vector<std::string>& names, ShapeOf shape_of,
                 CopyInto copy_into, const std::string& source) {
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters(/*recurse=*/true);
  std::set<std::string> filled;
  std::vector<std::string> unexpected;
  for (const std::string& name : names) {
    const std::string canon = model.canonical_name(name);
    at::Tensor* p = params.find(canon);
    if (p == nullptr) {
      if (!model.is_ignorable(name)) unexpected.push_back(name);
      continue;
    }
    const auto [shape, floating] = shape_of(name);
    LETHE_CHECK(shape == p->sizes().vec(), source, ": tensor '", name, "' has shape ",
                shape_str(shape), " but the model (from its config) expects ",
                shape_str(p->sizes()));
    LETHE_CHECK(floating, source, ": tensor '", name,
                "' is not floating point; model weights must be F32, F16, BF16 or F64 "
                "(quantized checkpoints are not supported)");
    LETHE_CHECK(filled.insert(canon).second, source, ": tensor '", canon,
                "' is stored twice (as '", name, "' and under another name)");
    copy_into(name, *p);
  }
  auto listing = [](const std::vector<std::string>& v) {
    std::string list;
    for (std::size_t i = 0; i < v.size() && i < 8; ++i) list += " '" + v[i] + "'";
    if (v.size() > 8) list += " ... (" + std::to_string(v.size()) + " in all)";
    return list;
  };
  if (!unexpected.empty()) {
    fail(source, ": unexpected tensor", unexpected.size() > 1 ? "s" : "", listing(unexpected),
         " — not part of a ", model.config().model_type, " model with this config");
  }
  std::vector<std::string> missing;
  for (const auto& item : params) {
    if (!filled.count(item.key())) {
      missing.push_back(item.key() + " " + shape_str(item.value().sizes()));
    }
  }
  if (!missing.empty()) {
    fail(source, ": missing tensor", missing.size() > 1 ? "s" : "", listing(missing));
  }
}

}  // namespace

namespace {
std::pair<std::vector<std::int64_t>, bool> checkpoint_shape(const io::Checkpoint& ck,
                                                            const std::string& name) {
  const io::TensorInfo* info = ck.find(name);
  const bool floating = info->dtype == io::DType::kF32 || info->dtype == io::DType::kF16 ||
                        info->dtype == io::DType::kBF16 || info->dtype == io::DType::kF64;
  return {info->shape, floating};
}
}  // namespace

void load_weights(CausalLM& model, const io::Checkpoint& ck, const std::string& source) {
  load_strict(
      model, ck.names(), [&](const std::string& name) { return checkpoint_shape(ck, name); },
      [&](const std::string& name, at::Tensor& p) { ck.read_into(name, p); }, source);
}

void verify_checkpoint(CausalLM& model, const io::Checkpoint& ck, const std::string& source) {
  load_strict(
      model, ck.names(), [&](const std::string& name) { return checkpoint_shape(ck, name); },
      [](const std::string&, at::Tensor&) {}, source);
}

std::shared_ptr<CausalLM> load_llama2c(const fs::path& file, const LoadOptions& options) {
  io::Llama2cCheckpoint ck = io::read_llama2c(file);
  const io::Llama2cHeader& h = ck.header;
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = h.vocab_size;
  c.hidden_size = h.dim;
  c.num_layers = h.n_layers;
  c.num_heads = h.n_heads;
  c.num_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.intermediate_size = h.hidden_dim;
  c.max_position_embeddings = h.seq_len;
  c.norm = NormKind::kRmsNorm;
  c.norm_eps = 1e-5;  // llama2.c's rmsnorm constant
  c.activation = Activation::kSilu;
  c.positions = PositionKind::kRotary;
  c.rope_theta = 10000.0;
  c.rotary_dim = c.head_dim;
  c.tie_word_embeddings = h.shared_classifier;
  c.bos_token_id = 1;  // llama2.c's SentencePiece conventions
  c.eos_token_ids = {2};
  validate(c, file.string());
  std::shared_ptr<CausalLM> model = build_model(c, options.dtype);
  model->to(options.device);
  std::map<std::string, at::Tensor> by_name(ck.tensors.begin(), ck.tensors.end());
  std::vector<std::string> names;
  for (const auto& [name, _] : ck.tensors) names.push_back(name);
  load_strict(
      *model, names,
      [&](const std::string& name) { return std::make_pair(by_name[name].sizes().vec(), true); },
      [&](const std::string& name, at::Tensor& p) { p.copy_(by_name[name]); }, file.string());
  model->eval();
  return model;
}

namespace {
std::atomic<bool> g_allow_nonfinite{false};

// Whether every value is finite, scanned a slice at a time: isfinite's temporaries (a copy
// and a mask per element) would otherwise add a large share of the model to peak memory.
bool all_finite(const at::Tensor& p) {
  constexpr std::int64_t kSlice = 1 << 22;
  const at::Tensor flat = p.reshape({-1});
  for (std::int64_t i = 0; i < flat.numel(); i += kSlice) {
    if (!at::isfinite(flat.narrow(0, i, std::min(kSlice, flat.numel() - i))).all().item<bool>()) return false;
  }
  return true;
}

// A damaged or diverged checkpoint computes NaN everywhere downstream; say which tensor.
void check_finite_weights(const CausalLM& model, const std::string& source) {
  torch::NoGradGuard ng;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    const at::Tensor& p = item.value();
    if (!p.is_floating_point() || all_finite(p)) continue;
    const std::int64_t bad = p.numel() - at::isfinite(p).sum().item<std::int64_t>();
    fail(source, ": tensor '", item.key(), "' holds ", bad, " NaN or Inf value", bad == 1 ? "" : "s",
         " (of ", p.numel(), "): the checkpoint is damaged or training diverged (--allow-nonfinite loads it anyway)");
  }
}
}  // namespace

void set_allow_nonfinite(bool allow) { g_allow_nonfinite = allow; }
bool allow_nonfinite() { return g_allow_nonfinite; }

std::shared_ptr<CausalLM> load_model(const fs::path& dir, const LoadOptions& options) {
  check_model_folder(dir);
  ModelConfig config = read_config(dir);
  std::shared_ptr<CausalLM> model = build_model(config, options.dtype);
  model->to(options.device);
  io::Checkpoint ck = io::Checkpoint::open(dir);
  const std::string source = ck.files().size() == 1 ? ck.files()[0].string() : dir.string();
  load_weights(*model, ck, source);
  if (options.check_finite) check_finite_weights(*model, source);
  model->eval();
  log_debug("loaded ", config.model_type, " from ", dir.string(), ": ", model->parameter_count(),
            " parameters");
  return model;
}

void write_model(const CausalLM& model, const fs::path& dir, std::optional<c10::ScalarType> dtype_option,
                 const TensorFilter& filter) {
  LETHE_CHECK(fs::is_directory(dir), dir.string(), ": write_model needs an existing folder");
  LETHE_CHECK(!fs::exists(dir / "model.safetensors.index.json"), dir.string(),
              " holds a sharded checkpoint (model.safetensors.index.json); save into an empty "
              "folder instead");
  const ModelConfig& c = model.config();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  c10::ScalarType dtype = c10::kFloat;
  bool first = true;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (first) {
      dtype = dtype_option.value_or(item.value().scalar_type());
      first = false;
    }
    at::Tensor t = item.value().detach();
    if (filter) {
      torch::NoGradGuard ng;
      at::Tensor f = filter(item.key(), t);
      LETHE_CHECK(f.sizes() == t.sizes(), "write_model: the filter changed the shape of '", item.key(), "'");
      t = f;
    }
    tensors.emplace_back(item.key(), t.to(torch::kCPU, dtype));
  }
  io::save_safetensors(dir / "model.safetensors", tensors);
  write_file_atomic(dir / "config.json", config_to_json(c, dtype));

  std::string gen = c.generation_config_json;
  if (gen.empty()) {
    Json g = Json::object();
    write_special_ids(c, g);
    gen = g.dump(2) + "\n";
  }
  write_file_atomic(dir / "generation_config.json", gen);
}

void save_model(const CausalLM& model, const fs::path& dir, const SaveOptions& options) {
  StagedFolder out(dir, options.replace, "model folder");
  write_model(model, out.path(), options.dtype);
  out.commit();
}

}  // namespace lethe::model

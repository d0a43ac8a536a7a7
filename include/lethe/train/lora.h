// LoRA adapters: y = W x + (alpha / r) · B A dropout(x) on selected linear layers, with the base
// weights frozen. Saved and loaded in the PEFT layout (adapter_config.json +
// adapter_model.safetensors, keys base_model.model.<module>.lora_A.weight / lora_B.weight).
// adapter_config.json holds only keys PEFT itself writes (its LoraConfig refuses others);
// lethe's own notes (FILA init, whether the adapter needs the FILA-modified base) go to
// lethe_adapter.json beside it. No test runs PEFT here (no Python packages on these machines).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lethe/data/batch.h"
#include "lethe/model/causal_lm.h"
#include "lethe/model/load.h"

namespace lethe::train {

struct LoraConfig {
  std::int64_t rank = 16;
  double alpha = 32.0;
  double dropout = 0.0;
  // Module names to adapt: a regex matched against the full module name
  // ("model.layers.3.self_attn.q_proj"). Empty: every attention and MLP linear of the family.
  std::string target_regex;
  // "default": A ~ Kaiming-uniform, B = 0 (PEFT's), so the model starts unchanged.
  // "fila": Fisher-weighted low-rank init (LoKU), see fila_init().
  std::string init = "default";
  // The one check of these settings (attach and run configs both call it); errors name the
  // config key, the value and its domain.
  void validate() const;
};

// lethe's notes on an adapter, beside adapter_config.json.
inline constexpr const char* kLetheAdapterFile = "lethe_adapter.json";

class LoraAdapter {
 public:
  // Attaches adapters to `model` (whose base parameters are then frozen). Deterministic in
  // `seed`.
  static std::shared_ptr<LoraAdapter> attach(model::CausalLM& model, const LoraConfig& config,
                                             std::uint64_t seed);
  ~LoraAdapter();

  const LoraConfig& config() const { return config_; }
  double scale() const;
  // Trainable tensors with their PEFT names (without the "base_model.model." prefix:
  // "<module>.lora_A.weight").
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  std::vector<std::string> module_names() const;

  // For write_model: each adapted weight as W + scale · B A (computed in the compute dtype, stored
  // in the model's), every other tensor unchanged, the model itself untouched. This is how a
  // run writes its merged model/: merge() + unmerge() would round W in a half-precision base.
  model::TensorFilter merged_filter() const;

  // W += scale · B A (adapters then contribute nothing until unmerge()).
  void merge();
  void unmerge();
  bool merged() const { return merged_; }
  // Removes the adapters from the model (merging first if `merge`), unfreezing nothing.
  void detach(bool merge);

  // The dropout generators of the adapted modules ("lora.<module>"), for checkpoints.
  std::vector<std::pair<std::string, at::Generator*>> generators();

  // PEFT files. `base_model` is written as base_model_name_or_path.
  void save(const std::filesystem::path& dir, const std::string& base_model = "") const;
  // Loads PEFT files into a freshly attached adapter (rank, alpha, targets from the config).
  static std::shared_ptr<LoraAdapter> load(model::CausalLM& model, const std::filesystem::path& dir);
  // Whether the base weights were changed at attach time (FILA keeps W - scale·BA as the base):
  // such an adapter is only valid on top of this modified base.
  bool base_modified() const { return base_modified_; }

  // FILA (LoKU, Cha et al. 2025): with diagonal-Fisher importances F_f (forget) and F_r (retain)
  // of each adapted weight, I = F_f / (F_r + 1e-5), row weights w = sqrt(Σ_cols I); B A is the
  // row-weighted rank-r approximation of W (SVD of diag(w) W), and the base becomes
  // W - scale·B A, so the model's outputs are unchanged at the start.
  void fila_init(model::CausalLM& model, const std::vector<data::Batch>& forget,
                 const std::vector<data::Batch>& retain);

  struct Slot;

 private:
  LoraAdapter() = default;
  LoraConfig config_;
  std::vector<std::unique_ptr<Slot>> slots_;
  bool merged_ = false;
  bool base_modified_ = false;
};

// The default LoRA targets of a model family (attention and MLP linears, as PEFT picks them),
// declared by the family's ArchSpec.
std::string default_lora_targets(const model::CausalLM& model);

}  // namespace lethe::train

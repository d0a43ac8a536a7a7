// The RESTOR protocol (Rezaei et al., 2024, "RESTOR: Knowledge Recovery through Machine
// Unlearning"; docs/probes.md "RESTOR"): can unlearning undo a corruption and bring back what
// the model knew? The target is corrupted by fine-tuning it on wrong facts about the forget
// split's people (each question with its first perturbed answer), the corruption is unlearned
// with a method (forget set: those wrong facts), and the true answers are measured on the clean
// target, the corrupted and the restored model:
//
//   restoration = (m_restored − m_corrupted) / (m_target − m_corrupted)   on the true answers
//                 (0: still corrupted, 1: back to what the target knew)
//   removal     = (w_corrupted − w_restored) / (w_corrupted − w_target)   on the wrong answers
//
// A method can remove the wrong facts (removal 1) without restoring the true ones (restoration
// 0): forgetting is not the same as recovering. `lethe restor` runs it and writes RESTOR.json.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lethe::run {

struct RestorOptions {
  std::filesystem::path model;      // the clean target: a model folder (with its tokenizer)
  std::filesystem::path data;       // a TOFU-layout folder: FORGET.jsonl, FORGET_perturbed.jsonl, retainNN.jsonl
  std::filesystem::path out;        // new or empty unless force
  std::string forget_split = "forget10";  // whose facts are corrupted
  std::string method = "NPO";       // what unlearns the corruption
  // key=value overrides of the two generated configs (corrupt.yaml, unlearn.yaml), as
  // `lethe unlearn --set`: "method.beta=0.2", "train.lr=1e-4" go to the unlearning run,
  // "corrupt.train.lr=1e-3" (the prefix dropped) to the corruption.
  std::vector<std::string> overrides;
  std::string prompt_template = "plain";
  std::int64_t max_length = 512;
  std::int64_t max_items = 0;       // the first N forget items only (0: all)
  std::int64_t batch_size = 8;      // evaluation
  std::uint64_t seed = 0;
  std::string device = "cpu";
  bool progress = true;
  bool force = false;
};

// Runs corruption, unlearning and the three evaluations; writes <out>/RESTOR.json (format
// lethe.restor, docs/probes.md) and returns it.
nlohmann::json run_restor(const RestorOptions& options);

}  // namespace lethe::run

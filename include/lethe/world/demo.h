// `lethe demo`: the whole promise on a laptop CPU with no download. A world of fictitious people
// is generated; a SentencePiece tokenizer, a small Llama target (trained on everyone) and its
// retrain oracle (trained without the forget people, same recipe) are trained from scratch; the
// target unlearns the forget split; target, oracle and unlearned model are evaluated with the
// TOFU suite (oracle as reference) and on canaries, audited for what they memorised (audit/), and probed for removal against suppression
// (probe/); one report opens with the probes' verdict and the checks and compares them side by side.
// Trained artefacts are cached by a hash of their recipe, so a second run skips training.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace lethe::world {

struct DemoOptions {
  std::filesystem::path out = "lethe-demo";
  std::string method;                  // empty: the demo's default (see docs/demo.md)
  std::string forget_split = "forget10";
  std::uint64_t seed = 0;
  std::string scale = "default";       // "default" or "tiny" (seconds: tests)
  std::string device = "cpu";
  bool progress = true;
  // Run every probe (robustness: quantize, relearn, in_context, representation, parametric,
  // linear; docs/probes.md) on the unlearned model against the oracle and the target, and open
  // the report with their verdict.
  bool probes = true;
  // Audit target, oracle and unlearned model for what they memorised (docs/audits.md): the
  // world's canaries (exposure), ghost sentences, an extraction scan against the training text
  // and token forcing. Worlds only (a data folder has no canaries).
  bool audit = true;
  // Unlearn with train.stop_rule holdout_nll (docs/training.md): stop when the forget answers'
  // mean NLL reaches the holdout people's, checked every step, within 4x the demo's epochs.
  bool stop_at_holdout = false;
  // The insertion study (Hubble; docs/audits.md): secrets, biographies and passphrases inserted
  // 1, 4, 16 and 64 times; three perturbed models trained with the target's recipe plus them
  // (spread over the run, all in its first epoch, all in its last); the target is the standard
  // model. All four audited against duplication count and timing (OUT/study/). Worlds only.
  bool insertion_study = false;
  // A TOFU-layout folder to run on instead of a generated world (TOFU itself: ../shared/data/tofu),
  // and how many of its authors to use (0: all; the forget split keeps its share, at least one).
  std::filesystem::path data;
  std::int64_t authors = 0;
};

struct DemoResult {
  nlohmann::json summary;  // what SUMMARY.json holds
  std::filesystem::path report;
  bool trained = false;    // false: target, oracle and tokenizer came from the cache
  double seconds = 0;
};

DemoResult run_demo(const DemoOptions& options);

// The method the demo uses when none is given, and the ones it accepts.
const char* demo_default_method();

}  // namespace lethe::world

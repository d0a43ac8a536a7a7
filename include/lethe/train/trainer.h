// The training loop every run uses: fine-tuning and unlearning differ only in their Objective.
//
// Epoch e visits the objective's anchor examples — size() every epoch, plus epoch_extras(e) —
// in data::epoch_order(n_e, seed, e) over them; `grad_accum`
// micro-batches of `batch_size` make one optimizer step (a short last window at the end of an
// epoch still steps, its loss averaged over the micro-batches it has); gradients are clipped to
// `max_grad_norm`; AdamW follows the schedule. Every optimizer step appends one line to
// <run_dir>/train_log.jsonl. Checkpoints (<run_dir>/checkpoints/step-N/: trainable tensors,
// optimizer state, position) are written atomically, and a run restarted with the same config
// resumes from the newest one and ends bit-identical to an uninterrupted run.
#pragma once

#include <ATen/core/Generator.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lethe/train/optimizer.h"
#include "lethe/train/objective.h"

namespace lethe::train {

// Stops or warns when training degenerates (OpenUnlearning's defaults are known to collapse
// models silently).
struct CollapseGuard {
  std::string action = "warn";      // warn | stop | off
  double retain_loss_factor = 5.0;  // the guarded term (LossTerms::guarded) exceeds this × its first value
  double retain_loss_floor = 1.0;   // ... and this many nats (a memorised retain set starts near 0)
  std::int64_t repetition_every = 0;   // > 0: call the repetition probe every N steps
  double repetition_threshold = 0.5;   // probe result (share of repeated n-grams) above this
  // The one check of these settings (the trainer and run configs both call it).
  void validate() const;
};

struct TrainerConfig {
  std::int64_t epochs = 1;
  std::int64_t max_steps = 0;  // > 0: stop after this many optimizer steps (epochs then ignored)
  std::int64_t batch_size = 4;
  std::int64_t grad_accum = 1;
  double max_grad_norm = 1.0;  // <= 0: no clipping
  bool gradient_checkpointing = false;  // the trained model recomputes block activations in backward
  AdamWConfig optimizer;
  std::string schedule = "linear";
  std::int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;   // used when warmup_steps == 0
  std::uint64_t seed = 0;
  std::int64_t checkpoint_every = 0;  // optimizer steps; 0: no checkpoints
  std::int64_t keep_checkpoints = 2;
  std::int64_t eval_every = 0;        // optimizer steps; 0: no evaluation callbacks
  std::int64_t stop_every = 0;        // optimizer steps between calls of the stop check; 0: never
  std::filesystem::path run_dir;      // required: train_log.jsonl and checkpoints/
  bool resume = true;
  bool progress = true;
  CollapseGuard guard;
  // Anything else that defines the run (data, method, model); a checkpoint made under a
  // different fingerprint is not resumed from.
  std::string fingerprint;
};

struct TrainResult {
  std::int64_t steps = 0;
  std::int64_t resumed_from = 0;  // 0 when started fresh
  bool stopped = false;           // before the plan's last step
  std::string stopped_by;         // "guard" (the collapse guard) or "rule" (the stop check)
  std::string stop_reason;
  std::map<std::string, double> last_terms;
};

using EvalCallback = std::function<std::map<std::string, double>(std::int64_t step)>;
using Probe = std::function<double()>;
// A stopping rule, asked every `stop_every` steps: a reason to stop (empty: go on) and the numbers
// it decided on (logged in train_log.jsonl as "stop_check").
struct StopDecision {
  std::string reason;
  std::map<std::string, double> values;
};
using StopCheck = std::function<StopDecision(std::int64_t step)>;

// Random generators whose state a checkpoint must carry (LoRA dropout masks, ...), by name.
using NamedGenerators = std::vector<std::pair<std::string, at::Generator*>>;

// Trains `params` (named; their requires_grad is set) under `objective`. Each checkpoint stores
// the state of `generators` and of libtorch's default CPU generator, and a resume restores
// them, so a resumed run draws the same random numbers as an uninterrupted one.
TrainResult train(const std::vector<std::pair<std::string, at::Tensor>>& params, Objective& objective,
                  const TrainerConfig& config, const EvalCallback& eval = {},
                  const Probe& repetition_probe = {}, const NamedGenerators& generators = {},
                  const StopCheck& stop = {});

// Total optimizer steps a config implies for the objective's examples (every epoch's and the
// extras of each).
std::int64_t planned_steps(const TrainerConfig& config, const Objective& objective);

}  // namespace lethe::train

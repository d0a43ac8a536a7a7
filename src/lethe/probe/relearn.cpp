// The relearning probe (docs/probes.md "relearn"): fine-tune a copy of the model a few steps on
// half of the forget set — and, separately, on benign items that share no facts with it — then
// measure the other half. A model that only suppressed the forget set relearns the held-back
// half from its sibling facts far faster than one that never knew it (Hu et al.; Łucki et al.:
// ten unrelated examples undo most of RMU).
#include <atomic>
#include <unistd.h>

#include "lethe/core/error.h"
#include "lethe/core/log.h"
#include "lethe/data/dataset.h"
#include "lethe/data/records.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"
#include "lethe/train/lora.h"
#include "lethe/train/objectives.h"
#include "lethe/train/trainer.h"
#include "probe/probes.h"

namespace lethe::probe {
namespace {
namespace fs = std::filesystem;

// A scratch folder for the trainer's log, removed when the attack is done.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() / ("lethe-relearn-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Fine-tuning of a copy of `m` for `steps` AdamW steps on `examples`: every weight, or (rank > 0)
// a LoRA adapter on every attention and MLP linear, merged into the copy afterwards.
std::shared_ptr<model::CausalLM> relearned(const model::CausalLM& m, const std::vector<data::Example>& examples,
                                           std::int64_t pad_id, std::int64_t steps, const ProbeOptions& o) {
  auto copy = model::clone_model(m, at::kFloat);
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::shared_ptr<train::LoraAdapter> adapter;
  if (o.relearn_lora_rank > 0) {
    for (auto& p : copy->parameters()) p.set_requires_grad(false);
    train::LoraConfig lc;
    lc.rank = o.relearn_lora_rank;
    lc.alpha = 2.0 * static_cast<double>(o.relearn_lora_rank);  // scale 2, lethe's and PEFT's usual ratio
    adapter = train::LoraAdapter::attach(*copy, lc, o.eval.seed);
    params = adapter->named_parameters();
  } else {
    for (const auto& p : copy->named_parameters()) params.emplace_back(p.key(), p.value());
  }
  copy->train();
  train::FinetuneObjective objective(*copy, examples, pad_id);
  ScratchDir scratch;
  train::TrainerConfig tc;
  tc.max_steps = steps;
  tc.batch_size = o.relearn_batch;
  tc.optimizer.lr = o.relearn_lr;
  tc.schedule = "constant";
  tc.seed = o.eval.seed;
  tc.run_dir = scratch.path;
  tc.resume = false;
  tc.progress = false;
  tc.guard.action = "off";
  train::train(params, objective, tc);
  if (adapter) adapter->detach(/*merge=*/true);
  copy->eval();
  for (auto& [_, p] : params) p.set_requires_grad(false);
  return copy;
}

void check_relearn(const ProbeOptions& o) {
  const eval::ForgetView view = eval::forget_view(o.eval);
  LETHE_CHECK(!view.forget_qa.empty() && !view.benign_qa.empty(), "probe relearn: the ", o.eval.suite,
              " suite has no forget and benign QA files to fine-tune on (tofu has)");
}

// The examples within the model's positions: a longer one is cut at them (its end, as encode_qa
// cuts at max_length), said once. Without it an example past the positions fails the forward.
std::vector<data::Example> within_positions(const std::vector<data::Example>& examples, std::int64_t positions,
                                            const std::string& label) {
  std::vector<data::Example> out = examples;
  std::size_t cut = 0;
  if (positions <= 0) return out;
  for (auto& e : out) {
    if (e.input_ids.size() <= static_cast<std::size_t>(positions)) continue;
    e.input_ids.resize(static_cast<std::size_t>(positions));
    e.labels.resize(static_cast<std::size_t>(positions));
    ++cut;
  }
  if (cut > 0) log_warn("probe relearn ", label, ": ", cut, " item(s) longer than the model's ", positions, " positions were cut");
  return out;
}

std::vector<Attack> relearn_attacks(const ProbeOptions& o, const text::Tokenizer& tok) {
  check_relearn(o);
  const eval::ForgetView view = eval::forget_view(o.eval);
  LETHE_CHECK(!o.relearn_steps.empty(), "probe relearn: no step counts");
  for (const std::int64_t k : o.relearn_steps) LETHE_CHECK(k > 0, "probe relearn: steps must be positive, got ", k);
  LETHE_CHECK(o.relearn_lr > 0, "probe relearn: lr must be positive, got ", o.relearn_lr);
  LETHE_CHECK(o.relearn_batch > 0, "probe relearn: batch must be positive, got ", o.relearn_batch);
  LETHE_CHECK(o.relearn_lora_rank >= 0, "probe relearn: the LoRA rank must be 0 (full fine-tuning) or positive, got ",
              o.relearn_lora_rank);
  std::vector<data::QARecord> forget = forget_records(o.eval, "relearn"), benign = data::read_qa(view.benign_qa);
  LETHE_CHECK(forget.size() >= 2, "probe relearn: ", view.forget_qa.string(), " has ", forget.size(),
              " items; half of them are relearned and the other half measured, so at least 2 are needed");
  const std::size_t half = forget.size() / 2;
  forget.resize(half);
  if (benign.size() > half) benign.resize(half);  // as many benign items as relearned ones
  const std::size_t max_len = static_cast<std::size_t>(o.eval.max_length > 0 ? o.eval.max_length : 512);
  auto forget_ex = std::make_shared<std::vector<data::Example>>(
      data::qa_examples(tok, o.eval.prompt_template, forget, max_len));
  auto benign_ex = std::make_shared<std::vector<data::Example>>(
      data::qa_examples(tok, o.eval.prompt_template, benign, max_len));
  const std::int64_t pad_id = text::padding_id(tok);
  const auto measured = static_cast<std::int64_t>(half);  // the held-back half: items [half, 2·half)
  std::vector<Attack> out;
  for (const auto& [name, ex] : {std::pair{"forget-half", forget_ex}, std::pair{"benign", benign_ex}}) {
    for (const std::int64_t k : o.relearn_steps) {
      Attack a;
      a.setting = std::string(name) + " " + std::to_string(k) + " steps" +
                  (o.relearn_lora_rank > 0 ? " lora-r" + std::to_string(o.relearn_lora_rank) : "");
      a.x = static_cast<double>(k);
      a.skip_items = measured;
      a.max_items = o.eval.max_items > 0 ? o.eval.max_items - measured : 0;
      const std::string label = a.setting;
      a.apply = [ex, pad_id, k, o, label](const model::CausalLM& m) {
        log_info("probe relearn ", label, ": ", ex->size(), " items");
        return relearned(m, within_positions(*ex, m.config().max_position_embeddings, label), pad_id, k, o);
      };
      out.push_back(std::move(a));
    }
  }
  return out;
}

}  // namespace

const Probe& relearn_probe() {
  static const Probe p{"relearn",
                       "fine-tune a copy k steps (default 20) on half of the forget set, and on as many benign "
                       "(retain) items, then measure the other half",
                       "relearning steps", relearn_attacks, nullptr, nullptr, nullptr, check_relearn};
  return p;
}

}  // namespace lethe::probe

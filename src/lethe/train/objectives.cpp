#include "lethe/train/objectives.h"

#include "lethe/core/error.h"
#include "lethe/model/score.h"

namespace lethe::train {
namespace {
c10::Device device_of(model::CausalLM& m) { return m.head_weight().device(); }
}  // namespace

at::Tensor logits_of(model::CausalLM& model, const data::Batch& b, model::HookObserver* hooks) {
  model::ForwardOptions fo;
  fo.attention_mask = b.attention_mask;
  fo.position_ids = b.position_ids;
  fo.hooks = hooks;
  return model.forward(b.input_ids, fo).logits;
}

model::LabelLogprobs label_logprobs_of(model::CausalLM& model, const data::Batch& b) {
  if (model::chunked_label_logprobs_applies(model, b.input_ids.size(0), b.input_ids.size(1))) {
    model::ForwardOptions fo;
    fo.attention_mask = b.attention_mask;
    fo.position_ids = b.position_ids;
    fo.logits = model::LogitsMode::kNone;
    return model::chunked_label_logprobs(model, model.forward(b.input_ids, fo).last_hidden, b.labels);
  }
  const model::ShiftedLabels s = model::shift_labels(logits_of(model, b), b.labels);
  return {model::label_logprobs(s), s.mask};
}

at::Tensor nll_of(model::CausalLM& model, const data::Batch& b) {
  const model::LabelLogprobs lp = label_logprobs_of(model, b);
  return model::mean_nll(lp.logprobs, lp.mask);
}

FinetuneObjective::FinetuneObjective(model::CausalLM& model, const std::vector<data::Example>& examples,
                                     std::int64_t pad_id)
    : model_(model), examples_(examples), pad_id_(pad_id), every_epoch_(examples.size()) {}

FinetuneObjective::FinetuneObjective(model::CausalLM& model, const std::vector<data::Example>& examples,
                                     std::int64_t pad_id, std::size_t every_epoch,
                                     std::vector<std::vector<std::size_t>> by_epoch)
    : model_(model), examples_(examples), pad_id_(pad_id), every_epoch_(every_epoch), by_epoch_(std::move(by_epoch)) {
  LETHE_CHECK(every_epoch_ <= examples_.size(), "finetune: ", every_epoch_, " every-epoch examples of ", examples_.size());
  for (const auto& e : by_epoch_) {
    for (auto i : e) LETHE_CHECK(i >= every_epoch_ && i < examples_.size(), "finetune: inserted example ", i, " out of range");
  }
}

// The mean NLL over every label token of the micro-batch, computed per length group
// (data::length_groups) so that short QA pairs are not padded to the length of text windows;
// weighting each group's mean by its share of the label tokens keeps it the batch's mean.
LossTerms FinetuneObjective::loss(const std::vector<std::size_t>& idx, const std::vector<std::size_t>&,
                                           std::uint64_t) {
  std::vector<std::int64_t> lengths;
  for (auto i : idx) lengths.push_back(static_cast<std::int64_t>(examples_[i].input_ids.size()));
  std::vector<data::Batch> parts;
  std::vector<std::int64_t> counts;
  std::int64_t total = 0;
  for (const auto& g : data::length_groups(lengths, kGroupOverheadTokens)) {
    std::vector<std::size_t> sub;
    for (auto k : g) sub.push_back(idx[k]);
    parts.push_back(data::collate(data::pick(examples_, sub), pad_id_));
    counts.push_back(parts.back().loss_tokens());
    total += counts.back();
  }
  if (parts.size() > 1 && total == 0) {  // no label tokens at all: causal_lm_loss's rule (an error) for the whole batch
    parts = {data::collate(data::pick(examples_, idx), pad_id_)};
    counts = {0};
  }
  at::Tensor nll;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    if (parts.size() > 1 && counts[k] == 0) continue;  // carries no loss
    const data::Batch b = parts[k].to(device_of(model_));
    at::Tensor part = nll_of(model_, b);
    if (parts.size() > 1) part = part * (static_cast<double>(counts[k]) / static_cast<double>(total));
    nll = nll.defined() ? nll + part : part;
  }
  return {nll, {{"nll", nll}}};
}

std::int64_t FinetuneObjective::tokens(const std::vector<std::size_t>& idx) const {
  return data::count_tokens(examples_, idx);
}

}  // namespace lethe::train

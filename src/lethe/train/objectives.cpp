#include "lethe/train/objectives.h"

#include "lethe/core/error.h"
#include "lethe/unlearn/losses.h"

namespace lethe::train {
namespace {
std::vector<const data::Example*> pick(const std::vector<data::Example>& v, const std::vector<std::size_t>& idx) {
  std::vector<const data::Example*> out;
  out.reserve(idx.size());
  for (auto i : idx) out.push_back(&v[i]);
  return out;
}
std::int64_t count_tokens(const std::vector<data::Example>& v, const std::vector<std::size_t>& idx) {
  std::int64_t n = 0;
  for (auto i : idx) n += static_cast<std::int64_t>(v[i].input_ids.size());
  return n;
}
c10::Device device_of(model::CausalLM& m) { return m.head_weight().device(); }
}  // namespace

FinetuneObjective::FinetuneObjective(model::CausalLM& model, const std::vector<data::Example>& examples,
                                     std::int64_t pad_id)
    : model_(model), examples_(examples), pad_id_(pad_id) {}

// The mean NLL over every label token of the micro-batch, computed per length group
// (data::length_groups) so that short QA pairs are not padded to the length of text windows;
// weighting each group's mean by its share of the label tokens keeps it the batch's mean.
unlearn::LossTerms FinetuneObjective::loss(const std::vector<std::size_t>& idx, const std::vector<std::size_t>&,
                                           std::uint64_t) {
  std::vector<std::int64_t> lengths;
  for (auto i : idx) lengths.push_back(static_cast<std::int64_t>(examples_[i].input_ids.size()));
  std::vector<data::Batch> parts;
  std::vector<std::int64_t> counts;
  std::int64_t total = 0;
  for (const auto& g : data::length_groups(lengths, kGroupOverheadTokens)) {
    std::vector<std::size_t> sub;
    for (auto k : g) sub.push_back(idx[k]);
    parts.push_back(data::collate(pick(examples_, sub), pad_id_));
    counts.push_back(parts.back().loss_tokens());
    total += counts.back();
  }
  if (parts.size() > 1 && total == 0) {  // no label tokens at all: mean_nll's rule for the whole batch
    parts = {data::collate(pick(examples_, idx), pad_id_)};
    counts = {0};
  }
  at::Tensor nll;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    if (parts.size() > 1 && counts[k] == 0) continue;  // carries no loss
    const data::Batch b = parts[k].to(device_of(model_));
    at::Tensor part = unlearn::mean_nll(unlearn::logits_of(model_, b), b.labels);
    if (parts.size() > 1) part = part * (static_cast<double>(counts[k]) / static_cast<double>(total));
    nll = nll.defined() ? nll + part : part;
  }
  return {nll, {{"nll", nll}}};
}

std::int64_t FinetuneObjective::tokens(const std::vector<std::size_t>& idx) const {
  return count_tokens(examples_, idx);
}

UnlearnObjective::UnlearnObjective(model::CausalLM& model, model::CausalLM* reference, unlearn::Method& method,
                                   const std::vector<data::Example>& forget,
                                   const std::vector<data::Example>& retain,
                                   const std::vector<data::Example>& alternate, std::int64_t pad_id,
                                   std::uint64_t seed)
    : model_(model), reference_(reference), method_(method), forget_(forget), retain_(retain),
      alternate_(alternate), pad_id_(pad_id), seed_(seed) {
  LETHE_CHECK(!forget_.empty(), "unlearning: the forget set is empty");
  LETHE_CHECK(!method_.needs_retain() || !retain_.empty(), "method ", method_.name(),
              " needs a retain set (data.retain)");
  LETHE_CHECK(!method_.needs_alternate() || alternate_.size() == forget_.size(), "method ", method_.name(),
              " needs refusal answers for every forget question (data.idk)");
  LETHE_CHECK(!method_.needs_reference() || reference_ != nullptr, "method ", method_.name(),
              " needs a reference model");
}

unlearn::LossTerms UnlearnObjective::loss(const std::vector<std::size_t>& idx,
                                          const std::vector<std::size_t>& positions, std::uint64_t epoch) {
  const auto dev = device_of(model_);
  unlearn::UnlearnBatch b;
  b.forget = data::collate(pick(forget_, idx), pad_id_).to(dev);
  if (method_.needs_retain()) {
    std::vector<std::size_t> r;
    const std::size_t nr = retain_.size();
    for (auto p : positions) {
      const std::uint64_t round = p / nr;
      const std::uint64_t key = epoch * 1'000'003ULL + round;
      if (key != cached_key_) {
        cached_order_ = data::epoch_order(nr, seed_ ^ data::kRetainStream, key);
        cached_key_ = key;
      }
      r.push_back(cached_order_[p % nr]);
    }
    b.retain = data::collate(pick(retain_, r), pad_id_).to(dev);
  }
  if (method_.needs_alternate()) b.alternate = data::collate(pick(alternate_, idx), pad_id_).to(dev);
  return method_.loss(model_, reference_, b);
}

std::int64_t UnlearnObjective::tokens(const std::vector<std::size_t>& idx) const {
  return count_tokens(forget_, idx);
}

}  // namespace lethe::train

// The unlearning objective: a Method over forget batches with paired retain and alternate
// batches (unlearn/objective.h).
#include "lethe/unlearn/objective.h"

#include "lethe/core/error.h"

namespace lethe::unlearn {
namespace {
c10::Device device_of(model::CausalLM& m) { return m.head_weight().device(); }
}  // namespace

UnlearnObjective::UnlearnObjective(model::CausalLM& model, model::CausalLM* reference, Method& method,
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

LossTerms UnlearnObjective::loss(const std::vector<std::size_t>& idx,
                                          const std::vector<std::size_t>& positions, std::uint64_t epoch) {
  const auto dev = device_of(model_);
  UnlearnBatch b;
  b.forget = data::collate(data::pick(forget_, idx), pad_id_).to(dev);
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
    b.retain = data::collate(data::pick(retain_, r), pad_id_).to(dev);
  }
  if (method_.needs_alternate()) b.alternate = data::collate(data::pick(alternate_, idx), pad_id_).to(dev);
  return method_.loss(model_, reference_, b);
}

std::int64_t UnlearnObjective::tokens(const std::vector<std::size_t>& idx) const {
  return data::count_tokens(forget_, idx);
}

}  // namespace lethe::unlearn

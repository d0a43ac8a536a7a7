// The parametric-trace probe (docs/probes.md "parametric"): is the forget set still written in the
// weights? Each MLP unit adds a fixed vector to the residual stream (its value vector: the
// down-projection's column); read through the final norm and the head (the logit lens) it is a
// distribution over the vocabulary. The target's units whose distributions put the most mass on
// tokens only the forget answers use are the forget set's parametric traces (ConceptVectors;
// Intrinsic Evaluation). A candidate fine-tuned from the target keeps the same units: how much of
// their excess alignment it keeps tells whether unlearning rewrote those vectors or left them and
// blocked what reads them. Reported beside the verdict, not part of it.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "lethe/core/error.h"
#include "lethe/data/records.h"
#include "lethe/model/causal_lm.h"
#include "lethe/model/load.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"
#include "probe/probes.h"

namespace lethe::probe {
namespace {

// The answers' tokens as the scorer sees them (encode_qa's answer span, EOS and specials aside).
std::set<std::int64_t> answer_tokens(const text::Tokenizer& tok, const eval::EvalOptions& opt,
                                     const std::vector<data::QARecord>& items, std::size_t max_len) {
  std::set<std::int64_t> out;
  for (const auto& r : items) {
    const text::EncodedQA e = text::encode_qa(tok, opt.prompt_template, {r.question, r.answer}, max_len);
    for (std::size_t i = e.prompt_length; i < e.prompt_length + e.answer_tokens && i < e.input_ids.size(); ++i) {
      if (!tok.is_special(e.input_ids[i])) out.insert(e.input_ids[i]);
    }
  }
  return out;
}

// The forget-only tokens: in some forget answer and in no benign (retain) answer.
std::vector<std::int64_t> forget_only_tokens(const text::Tokenizer& tok, const ProbeOptions& o, std::size_t max_len) {
  const eval::ForgetView view = eval::forget_view(o.eval);
  const std::set<std::int64_t> forget = answer_tokens(tok, o.eval, forget_records(o.eval, "parametric"), max_len);
  const std::set<std::int64_t> benign = answer_tokens(tok, o.eval, data::read_qa(view.benign_qa), max_len);
  std::vector<std::int64_t> out;
  std::set_difference(forget.begin(), forget.end(), benign.begin(), benign.end(), std::back_inserter(out));
  LETHE_CHECK(!out.empty(), "probe parametric: every token of the forget answers (", view.forget_qa.string(),
              ") also occurs in a retain answer (", view.benign_qa.string(),
              "): no token marks the forget set, so no value vector can be aligned with it");
  return out;
}

// Record: (L, I) the alignment of every unit — log Σ_{t ∈ S} softmax(unembed(v))_t, the log of
// the mass its value vector's lens distribution puts on the forget-only tokens S — then K and |S|.
Record unit_alignments(model::CausalLM& m, const text::Tokenizer& tok, const ProbeOptions& o) {
  torch::NoGradGuard ng;
  m.eval();
  const std::size_t max_len = encoded_length(o.eval, m);
  const std::vector<std::int64_t> tokens = forget_only_tokens(tok, o, max_len);
  const c10::Device dev = m.head_weight().device();
  const at::Tensor s = at::tensor(tokens, at::kLong).to(dev);
  std::vector<at::Tensor> layers;
  constexpr std::int64_t kChunk = 512;  // units per lens pass: (512, V) logits at a time
  for (std::int64_t l = 0; l < m.config().num_layers; ++l) {
    const at::Tensor v = model::mlp_value_vectors(m, l).t();  // (I, C)
    std::vector<at::Tensor> parts;
    for (std::int64_t a = 0; a < v.size(0); a += kChunk) {
      const at::Tensor logits = m.unembed(v.narrow(0, a, std::min(kChunk, v.size(0) - a)).unsqueeze(0))[0];
      const at::Tensor logp = at::log_softmax(logits.to(at::kDouble), -1);  // (n, V)
      parts.push_back(at::logsumexp(logp.index_select(1, s), 1).to(at::kCPU));
    }
    layers.push_back(at::cat(parts));
  }
  return {at::stack(layers), at::tensor(o.trace_vectors, at::kLong),
          at::tensor(static_cast<std::int64_t>(tokens.size()), at::kLong)};
}

double mean_of(const at::Tensor& x) { return x.mean().item<double>(); }

Json compare_alignments(const std::map<std::string, Record>& by_role) {
  Json strongest = Json::object(), per_layer = Json::object();
  std::int64_t k = 0, tokens = 0;
  for (const auto& [role, r] : by_role) {
    LETHE_CHECK(r.size() == 3, "probe parametric: a record without alignments");
    const at::Tensor& a = r[0];  // (L, I)
    k = std::min<std::int64_t>(r[1].item<std::int64_t>(), a.numel());
    tokens = r[2].item<std::int64_t>();
    strongest[role] = mean_of(std::get<0>(a.flatten().topk(k)));
    const std::int64_t kl = std::min<std::int64_t>(k, a.size(1));
    for (std::int64_t l = 0; l < a.size(0); ++l) per_layer[role].push_back(mean_of(std::get<0>(a[l].topk(kl))));
  }
  Json out = {{"site", "the MLP value vectors of every block (the down-projection's columns), through the final norm "
                       "and the head"},
              {"tokens", tokens},
              {"vectors", k},
              {"strongest", strongest},
              {"per_layer", per_layer}};
  // The target's traces: its K most aligned units, and every other model of the same shape on
  // the same units — the candidate, fine-tuned from the target; the oracle too, whose units
  // correspond only when it started from the target's initialisation (the demo's do).
  if (!by_role.count("target")) return out;
  const at::Tensor t = by_role.at("target")[0].flatten();
  const std::int64_t width = by_role.at("target")[0].size(1);
  const auto [top, at_units] = t.topk(k);
  const double on_target = mean_of(top), typical = t.median().item<double>();
  Json typicals = {{"target", typical}}, on_traces = {{"target", on_target}}, kept = Json::object(),
       skipped = Json::object(), units = Json::array();
  for (std::int64_t i = 0; i < at_units.numel(); ++i) {
    const std::int64_t u = at_units[i].item<std::int64_t>();
    units.push_back({{"layer", u / width}, {"unit", u % width}, {"target", t[u].item<double>()}});
  }
  for (const auto& [role, r] : by_role) {
    if (role == "target") continue;
    if (r[0].sizes() != by_role.at("target")[0].sizes()) {
      skipped[role] = "its MLPs are not the target's shape: no unit corresponds";
      continue;
    }
    const at::Tensor c = r[0].flatten();
    // Each model's excess over its own typical unit: a shift of every unit alike (the head
    // lowering S for all of them) leaves the traces standing out as they did.
    const double typical_c = c.median().item<double>(), on_c = mean_of(c.index_select(0, at_units));
    typicals[role] = typical_c;
    on_traces[role] = on_c;
    kept[role] = on_target > typical ? Json((on_c - typical_c) / (on_target - typical)) : Json();
    for (std::int64_t i = 0; i < at_units.numel(); ++i) units[i][role] = c[at_units[i].item<std::int64_t>()].item<double>();
    Json per = Json::array();  // on the target's strongest units of each block
    for (std::int64_t l = 0; l < r[0].size(0); ++l) {
      const at::Tensor units_l = std::get<1>(by_role.at("target")[0][l].topk(std::min<std::int64_t>(k, width)));
      per.push_back(mean_of(r[0][l].index_select(0, units_l)));
    }
    out["per_layer"][role + "_on_target_units"] = per;
  }
  out["traces"] = {{"typical", typicals}, {"on_traces", on_traces}, {"kept", kept}, {"units", units}};
  if (!skipped.empty()) out["traces"]["skipped"] = skipped;
  return out;
}

void check_parametric(const ProbeOptions& o) {
  LETHE_CHECK(o.trace_vectors > 0, "probe parametric: --trace-vectors must be positive, got ", o.trace_vectors);
  const eval::ForgetView view = eval::forget_view(o.eval);
  LETHE_CHECK(!view.forget_qa.empty() && !view.benign_qa.empty(), "probe parametric: the ", o.eval.suite,
              " suite has no forget and retain QA files (tofu has)");
  LETHE_CHECK(!forget_records(o.eval, "parametric").empty(), "probe parametric: ", view.forget_qa.string(),
              " has no items");
}

}  // namespace

const Probe& parametric_probe() {
  static const Probe p{"parametric",
                       "the MLP value vectors most aligned (through the final norm and head) with tokens only the "
                       "forget answers use, in the target, and how much of that alignment the candidate keeps",
                       "layer", nullptr, unit_alignments, compare_alignments, nullptr, check_parametric};
  return p;
}

}  // namespace lethe::probe

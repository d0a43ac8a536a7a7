// The representation probe (docs/probes.md "representation"): linear CKA, layer by layer,
// between two models' hidden states on the forget prompts. An unlearned model whose forget
// answers changed but whose internal states on those prompts still match the target's layer for
// layer has hidden the knowledge at the output rather than removed it (Intrinsic Evaluation,
// ConceptVectors); the oracle's states are the other end.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <algorithm>

#include "lethe/core/error.h"
#include "lethe/data/records.h"
#include "lethe/model/causal_lm.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"
#include "probe/probes.h"

namespace lethe::probe {

double linear_cka(const at::Tensor& x, const at::Tensor& y) {
  LETHE_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(0) == y.size(0) && x.size(0) >= 2,
              "CKA: two (items, features) matrices over the same items are needed, got ", x.sizes(), " and ",
              y.sizes());
  torch::NoGradGuard ng;
  const at::Tensor a = x.to(at::kDouble) - x.to(at::kDouble).mean(0, /*keepdim=*/true);
  const at::Tensor b = y.to(at::kDouble) - y.to(at::kDouble).mean(0, /*keepdim=*/true);
  // ||AᵀB||²_F / (||AᵀA||_F ||BᵀB||_F), through the items' Gram matrices (items ≤ features here).
  const at::Tensor k = a.mm(a.t()), l = b.mm(b.t());
  const double kk = k.norm().item<double>(), ll = l.norm().item<double>();
  LETHE_CHECK(kk > 0 && ll > 0, "CKA: a representation is the same for every item");
  return (k * l).sum().item<double>() / (kk * ll);
}

std::size_t encoded_length(const eval::EvalOptions& opt, const model::CausalLM& m) {
  const std::int64_t wanted = opt.max_length > 0 ? opt.max_length : 512;
  return static_cast<std::size_t>(std::min<std::int64_t>(wanted, m.config().max_position_embeddings - 1));
}

Record hidden_states_at_last(model::CausalLM& m, const text::Tokenizer& tok,
                             const std::vector<std::vector<std::int64_t>>& prompts, std::int64_t batch_size) {
  torch::NoGradGuard ng;
  m.eval();
  const c10::Device dev = m.head_weight().device();
  const std::int64_t pad = text::padding_id(tok);
  std::vector<std::vector<at::Tensor>> rows;  // [layer][batch] (b, C)
  const auto bs = static_cast<std::size_t>(std::max<std::int64_t>(batch_size, 1));
  const std::int64_t positions = m.config().max_position_embeddings;
  for (const auto& p : prompts) {
    LETHE_CHECK(positions <= 0 || static_cast<std::int64_t>(p.size()) <= positions, "probe: a prompt of ", p.size(),
                " tokens is longer than the model's ", positions, " positions");
  }
  for (std::size_t s = 0; s < prompts.size(); s += bs) {
    const std::size_t e = std::min(prompts.size(), s + bs);
    std::int64_t t = 0;
    for (std::size_t i = s; i < e; ++i) t = std::max<std::int64_t>(t, static_cast<std::int64_t>(prompts[i].size()));
    const auto b = static_cast<std::int64_t>(e - s);
    at::Tensor ids = at::full({b, t}, pad, at::kLong), mask = at::zeros({b, t}, at::kLong);
    std::vector<std::int64_t> last;
    for (std::size_t i = s; i < e; ++i) {  // right padding: positions 0.. as the unpadded prompt's
      const auto n = static_cast<std::int64_t>(prompts[i].size());
      ids[static_cast<std::int64_t>(i - s)].narrow(0, 0, n).copy_(at::tensor(prompts[i], at::kLong));
      mask[static_cast<std::int64_t>(i - s)].narrow(0, 0, n).fill_(1);
      last.push_back(n - 1);
    }
    model::ForwardOptions fo;
    fo.attention_mask = mask.to(dev);
    fo.logits = model::LogitsMode::kNone;
    fo.output_hidden_states = true;
    const model::ForwardOutput out = m.forward(ids.to(dev), fo);
    const at::Tensor at_last = at::tensor(last, at::kLong).to(dev);
    const at::Tensor batch = at::arange(b, at::kLong).to(dev);
    if (rows.empty()) rows.resize(out.hidden_states.size());
    for (std::size_t l = 0; l < out.hidden_states.size(); ++l) {
      rows[l].push_back(out.hidden_states[l].index({batch, at_last}).to(at::kCPU, at::kDouble));
    }
  }
  Record r;
  for (auto& layer : rows) r.push_back(at::cat(layer, 0));
  return r;
}

namespace {

// The forget prompts' last tokens, each layer's residual stream there: L + 1 matrices (n, C),
// [0] the embeddings (HF hidden_states).
Record prompt_states(model::CausalLM& m, const text::Tokenizer& tok, const ProbeOptions& o) {
  const eval::EvalOptions& opt = o.eval;
  const std::vector<data::QARecord> items = forget_records(opt, "representation");
  LETHE_CHECK(items.size() >= 2, "probe representation: CKA needs at least 2 forget items, ",
              eval::forget_view(opt).forget_qa.string(), " has ", items.size());
  const std::size_t max_len = encoded_length(opt, m);
  std::vector<std::vector<std::int64_t>> prompts;
  for (const auto& r : items) {
    const text::EncodedQA e = text::encode_qa(tok, opt.prompt_template, {r.question, r.answer}, max_len);
    const std::size_t n = std::max<std::size_t>(e.prompt_length, 1);
    prompts.emplace_back(e.input_ids.begin(), e.input_ids.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return hidden_states_at_last(m, tok, prompts, opt.batch_size);
}

// Whether the items' states differ beyond rounding (relative to their size).
bool varies(const at::Tensor& x) {
  const at::Tensor d = x.to(at::kDouble);
  const double spread = (d - d.mean(0, true)).abs().max().item<double>();
  return spread > 1e-9 * std::max(1.0, d.abs().max().item<double>());
}

void check_states(const ProbeOptions& o) {
  const std::vector<data::QARecord> items = forget_records(o.eval, "representation");
  LETHE_CHECK(items.size() >= 2, "probe representation: CKA needs at least 2 forget items, ",
              eval::forget_view(o.eval).forget_qa.string(), " has ", items.size());
}

Json compare_states(const std::map<std::string, Record>& by_role) {
  Json out = {{"site", "each forget prompt's last token: [0] the embeddings, [l] the residual stream after block l, "
                       "the last the final norm's output (HF's hidden_states)"},
              {"cka", Json::object()}};
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"candidate", "target"}, {"candidate", "oracle"}, {"target", "oracle"}};
  for (const auto& [a, b] : pairs) {
    if (!by_role.count(a) || !by_role.count(b)) continue;
    const Record &x = by_role.at(a), &y = by_role.at(b);
    LETHE_CHECK(x.size() == y.size(), "probe representation: the ", a, " has ", x.size() - 1, " layers, the ", b,
                " ", y.size() - 1, "; CKA compares layer with layer");
    Json per_layer = Json::array();
    for (std::size_t l = 0; l < x.size(); ++l) {
      // A layer whose state is the same for every prompt has no CKA: the embeddings of the last
      // token, which every prompt shares (the template's "Answer:"). null, not a number.
      per_layer.push_back(varies(x[l]) && varies(y[l]) ? Json(linear_cka(x[l], y[l])) : Json());
    }
    out["cka"][a + "~" + b] = per_layer;
  }
  return out;
}

}  // namespace

const Probe& representation_probe() {
  static const Probe p{"representation",
                       "linear CKA per layer between the models' hidden states at the forget prompts' last token "
                       "(candidate~target, candidate~oracle, target~oracle)",
                       "layer", nullptr, prompt_states, compare_states, nullptr, check_states};
  return p;
}

}  // namespace lethe::probe

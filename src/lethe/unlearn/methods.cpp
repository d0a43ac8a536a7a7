// The unlearning methods and their registry. Formulas live in losses.cpp; each method here only
// wires model outputs to them. Defaults are OpenUnlearning's (its trainer configs).
#include <algorithm>
#include <cmath>
#include <regex>

#include "lethe/core/error.h"
#include "lethe/model/hooks.h"
#include "lethe/model/score.h"
#include "lethe/unlearn/losses.h"
#include "lethe/unlearn/method.h"

namespace lethe::unlearn {

namespace {

using Strings = std::vector<std::string>;

// Parameter values resolved against a method's declared parameters.
class Args {
 public:
  Args(const MethodInfo& info, const Params& given) : info_(info) {
    for (const auto& p : info.params) values_[p.name] = p.default_value;
    for (const auto& [k, v] : given) {
      auto it = values_.find(k);
      if (it == values_.end()) {
        std::string known;
        for (const auto& p : info.params) known += (known.empty() ? "" : ", ") + p.name;
        fail("method ", info.name, ": unknown parameter '", k, "' (accepted: ",
             known.empty() ? "none" : known, ")");
      }
      LETHE_CHECK(v.index() == it->second.index(), "method ", info.name, ": parameter '", k,
                  "' must be a ", kind(it->second));
      if (const auto* d = std::get_if<double>(&v)) {
        const ParamInfo& pi = *std::find_if(info.params.begin(), info.params.end(), [&](const ParamInfo& p) { return p.name == k; });
        check_range("method " + info.name + ": parameter '" + k + "'", *d, pi.range);
      }
      it->second = v;
    }
  }
  double num(const std::string& k) const { return std::get<double>(values_.at(k)); }
  const std::string& str(const std::string& k) const { return std::get<std::string>(values_.at(k)); }
  const Strings& list(const std::string& k) const { return std::get<Strings>(values_.at(k)); }
  const std::string& method() const { return info_.name; }

 private:
  static const char* kind(const ParamValue& v) {
    return v.index() == 0 ? "number" : v.index() == 1 ? "string" : "list of strings";
  }
  const MethodInfo& info_;
  std::map<std::string, ParamValue> values_;
};

// The retain term every GradDiff-style method shares: NLL, KL(ref‖θ) or nothing (alpha = 0).
struct Retain {
  std::string type;
  double alpha;
  Retain(const Args& a) : type(a.str("retain_loss_type")), alpha(a.num("alpha")) {
    LETHE_CHECK(type == "NLL" || type == "KL", "method ", a.method(),
                ": retain_loss_type must be NLL or KL, got '", type, "'");
  }
  bool active() const { return alpha != 0.0; }
  bool needs_reference() const { return active() && type == "KL"; }
  void add(model::CausalLM& m, model::CausalLM* ref, const data::Batch& b, LossTerms& out) const {
    if (!active()) return;
    LETHE_CHECK(b.size() > 0, "the method needs a retain batch");
    at::Tensor r;
    if (type == "NLL") {
      r = nll_of(m, b);
    } else {
      const at::Tensor logits = logits_of(m, b);  // before the reference's: the order dropout draws in
      at::Tensor ref_logits;
      {
        torch::NoGradGuard ng;
        ref_logits = logits_of(*ref, b);
      }
      r = kl_to_reference(logits, ref_logits, b.labels);
    }
    out.terms.emplace_back("retain", r);
    out.guarded = r;
    out.total = out.total + alpha * r;
  }
};

std::vector<ParamInfo> retain_params(double gamma, double alpha) {
  return {{"gamma", gamma, "weight of the forget term", Range::non_negative()},
          {"alpha", alpha, "weight of the retain term (0 disables it)", Range::non_negative()},
          {"retain_loss_type", std::string("NLL"), "NLL or KL (KL(ref‖θ) over the retain answer tokens)"}};
}

at::Tensor nll_no_grad(model::CausalLM& m, const data::Batch& b) {
  torch::NoGradGuard ng;
  return sequence_nll(label_logprobs_of(m, b));
}

// ---- methods -------------------------------------------------------------------------------

class GradAscent : public Method {
 public:
  explicit GradAscent(const Args&) {}
  std::string name() const override { return "GradAscent"; }
  LossTerms loss(model::CausalLM& m, model::CausalLM*, const UnlearnBatch& b) override {
    at::Tensor f = -nll_of(m, b.forget);
    return {f, {{"forget", f}}};
  }
};

// gamma · forget + alpha · retain, for every method whose forget term is `forget_term`.
class GradDiffFamily : public Method {
 public:
  GradDiffFamily(const Args& a, std::string name) : name_(std::move(name)), gamma_(a.num("gamma")), retain_(a) {}
  std::string name() const override { return name_; }
  bool needs_retain() const override { return retain_.active(); }
  bool needs_reference() const override { return retain_.needs_reference(); }
  LossTerms loss(model::CausalLM& m, model::CausalLM* ref, const UnlearnBatch& b) override {
    at::Tensor f = forget_term(m, ref, b);
    LossTerms out{gamma_ * f, {{"forget", f}}};
    retain_.add(m, ref, b.retain, out);
    return out;
  }

 protected:
  virtual at::Tensor forget_term(model::CausalLM& m, model::CausalLM* ref, const UnlearnBatch& b) = 0;
  std::string name_;
  double gamma_;
  Retain retain_;
};

class GradDiff : public GradDiffFamily {
 public:
  explicit GradDiff(const Args& a) : GradDiffFamily(a, "GradDiff") {}
  at::Tensor forget_term(model::CausalLM& m, model::CausalLM*, const UnlearnBatch& b) override {
    return -nll_of(m, b.forget);
  }
};

class NPO : public GradDiffFamily {
 public:
  explicit NPO(const Args& a) : GradDiffFamily(a, "NPO"), beta_(a.num("beta")) {}
  bool needs_reference() const override { return true; }
  at::Tensor forget_term(model::CausalLM& m, model::CausalLM* ref, const UnlearnBatch& b) override {
    at::Tensor nll = sequence_nll(label_logprobs_of(m, b.forget));
    return npo_loss(nll, nll_no_grad(*ref, b.forget), beta_);
  }

 private:
  double beta_;
};

class SimNPO : public GradDiffFamily {
 public:
  explicit SimNPO(const Args& a) : GradDiffFamily(a, "SimNPO"), beta_(a.num("beta")), delta_(a.num("delta")) {}
  at::Tensor forget_term(model::CausalLM& m, model::CausalLM*, const UnlearnBatch& b) override {
    at::Tensor nll = sequence_nll(label_logprobs_of(m, b.forget));
    return simnpo_loss(nll, label_counts(b.forget.labels), beta_, delta_);
  }

 private:
  double beta_, delta_;
};

class DPO : public GradDiffFamily {
 public:
  explicit DPO(const Args& a) : GradDiffFamily(a, "DPO"), beta_(a.num("beta")) {}
  bool needs_reference() const override { return true; }
  bool needs_alternate() const override { return true; }
  at::Tensor forget_term(model::CausalLM& m, model::CausalLM* ref, const UnlearnBatch& b) override {
    LETHE_CHECK(b.alternate.size() > 0, "DPO needs alternate (IdK) answers");
    at::Tensor win = sequence_nll(label_logprobs_of(m, b.alternate));
    at::Tensor lose = sequence_nll(label_logprobs_of(m, b.forget));
    return dpo_loss(win, nll_no_grad(*ref, b.alternate), lose, nll_no_grad(*ref, b.forget), beta_);
  }

 private:
  double beta_;
};

class IdkNLL : public GradDiffFamily {
 public:
  explicit IdkNLL(const Args& a) : GradDiffFamily(a, "IdkNLL") {}
  bool needs_alternate() const override { return true; }
  at::Tensor forget_term(model::CausalLM& m, model::CausalLM*, const UnlearnBatch& b) override {
    LETHE_CHECK(b.alternate.size() > 0, "IdkNLL needs alternate (IdK) answers");
    return nll_of(m, b.alternate);
  }
};

class UNDIAL : public GradDiffFamily {
 public:
  explicit UNDIAL(const Args& a) : GradDiffFamily(a, "UNDIAL"), beta_(a.num("beta")) {}
  bool needs_reference() const override { return true; }
  at::Tensor forget_term(model::CausalLM& m, model::CausalLM* ref, const UnlearnBatch& b) override {
    at::Tensor ref_logits;
    {
      torch::NoGradGuard ng;
      ref_logits = logits_of(*ref, b.forget);
    }
    return undial_loss(logits_of(m, b.forget), ref_logits, b.forget.labels, beta_);
  }

 private:
  double beta_;
};

class WGA : public GradDiffFamily {
 public:
  explicit WGA(const Args& a) : GradDiffFamily(a, "WGA"), beta_(a.num("beta")) {}
  at::Tensor forget_term(model::CausalLM& m, model::CausalLM*, const UnlearnBatch& b) override {
    return wga_loss(logits_of(m, b.forget), b.forget.labels, beta_);
  }

 private:
  double beta_;
};

class SatImp : public GradDiffFamily {
 public:
  explicit SatImp(const Args& a) : GradDiffFamily(a, "SatImp"), beta1_(a.num("beta1")), beta2_(a.num("beta2")) {}
  at::Tensor forget_term(model::CausalLM& m, model::CausalLM*, const UnlearnBatch& b) override {
    return satimp_loss(logits_of(m, b.forget), b.forget.labels, beta1_, beta2_);
  }

 private:
  double beta1_, beta2_;
};

class IHL : public GradDiffFamily {
 public:
  explicit IHL(const Args& a) : GradDiffFamily(a, "IHL"), margin_(a.num("margin")) {}
  at::Tensor forget_term(model::CausalLM& m, model::CausalLM*, const UnlearnBatch& b) override {
    return ihl_loss(logits_of(m, b.forget), b.forget.labels, margin_);
  }

 private:
  double margin_;
};

class CEU : public Method {
 public:
  explicit CEU(const Args& a) : ignore_first_(static_cast<std::int64_t>(a.num("ignore_first_n_answer_tokens"))) {
    LETHE_CHECK(ignore_first_ >= 0, "CE-U: ignore_first_n_answer_tokens must be >= 0");
  }
  std::string name() const override { return "CE-U"; }
  LossTerms loss(model::CausalLM& m, model::CausalLM*, const UnlearnBatch& b) override {
    at::Tensor f = ceu_loss(logits_of(m, b.forget), b.forget.labels, ignore_first_);
    return {f, {{"forget", f}}};
  }

 private:
  std::int64_t ignore_first_;
};

// Representation misdirection: the activation at one hook point is pushed, on forget answer
// tokens, to c·u for a fixed random unit vector u; on retain answer tokens it is held to the
// frozen reference's activation.
class RMU : public Method {
 public:
  explicit RMU(const Args& a)
      : gamma_(a.num("gamma")), alpha_(a.num("alpha")), coeff_(a.num("steering_coeff")),
        seed_(static_cast<std::uint64_t>(a.num("seed"))), trainable_(a.list("trainable_params")) {
    auto p = model::HookPoint::parse(a.str("layer"));
    LETHE_CHECK(p.has_value(), "RMU: 'layer' must be a hook point such as resid_post.7, got '",
                a.str("layer"), "'");
    point_ = *p;
    LETHE_CHECK(!trainable_.empty(), "RMU: trainable_params must list at least one regex");
  }
  std::string name() const override { return "RMU"; }
  bool observes_activations() const override { return true; }
  bool needs_reference() const override { return alpha_ != 0.0; }
  bool needs_retain() const override { return alpha_ != 0.0; }
  std::vector<std::string> trainable_parameters() const override { return trainable_; }

  LossTerms loss(model::CausalLM& m, model::CausalLM* ref, const UnlearnBatch& b) override {
    at::Tensor act = capture(m, b.forget, /*grad=*/true);
    if (!control_.defined() || control_.size(-1) != act.size(-1)) {
      // torch.rand in the reference: uniform [0, 1), normalised, scaled.
      at::Generator g = at::detail::createCPUGenerator(seed_);
      at::Tensor u = at::rand({act.size(-1)}, g, at::kFloat);
      control_ = (u / u.norm() * coeff_).to(act.device());
    }
    at::Tensor f = activation_mse(act, control_.view({1, 1, -1}), b.forget.labels.ne(lethe::kIgnoreIndex));
    LossTerms out{gamma_ * f, {{"forget", f}}};
    if (alpha_ != 0.0) {
      LETHE_CHECK(b.retain.size() > 0, "RMU needs a retain batch");
      at::Tensor r_act = capture(m, b.retain, true);
      at::Tensor r_ref;
      {
        torch::NoGradGuard ng;
        r_ref = capture(*ref, b.retain, false);
      }
      at::Tensor r = activation_mse(r_act, r_ref, b.retain.labels.ne(lethe::kIgnoreIndex));
      out.terms.emplace_back("retain", r);
      out.guarded = r;
      out.total = out.total + alpha_ * r;
    }
    return out;
  }

 private:
  at::Tensor capture(model::CausalLM& m, const data::Batch& b, bool) {
    at::Tensor got;
    model::HookFunction hook([&](const model::HookPoint& p, at::Tensor& x) {
      if (p == point_) got = x;
    });
    model::ForwardOptions fo;
    fo.attention_mask = b.attention_mask;
    fo.position_ids = b.position_ids;
    fo.hooks = &hook;
    fo.logits = model::LogitsMode::kNone;  // only the activation is needed
    m.forward(b.input_ids, fo);
    LETHE_CHECK(got.defined(), "RMU: hook point ", point_.name(), " does not exist in this model (",
                m.config().num_layers, " layers)");
    return got;
  }

  double gamma_, alpha_, coeff_;
  std::uint64_t seed_;
  std::vector<std::string> trainable_;
  model::HookPoint point_;
  at::Tensor control_;
};

// ---- registry ---------------------------------------------------------------------------------

struct Entry {
  MethodInfo info;
  std::unique_ptr<Method> (*make)(const Args&);
};

template <typename M>
std::unique_ptr<Method> make_as(const Args& a) {
  return std::make_unique<M>(a);
}

std::vector<ParamInfo> with(std::vector<ParamInfo> a, std::vector<ParamInfo> b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {{"GradAscent", "gradient ascent on the forget answers: -NLL", {}}, &make_as<GradAscent>},
      {{"GradDiff", "gamma·(-NLL forget) + alpha·retain", retain_params(1.0, 1.0)}, &make_as<GradDiff>},
      {{"NPO", "gamma·NPO(forget; β) + alpha·retain; needs the reference",
        with({{"beta", 0.1, "inverse temperature", Range::positive()}}, retain_params(1.0, 1.0))},
       &make_as<NPO>},
      {{"SimNPO", "gamma·SimNPO(forget; β, δ) (length-normalised, no reference) + alpha·retain",
        with({{"beta", 4.5, "inverse temperature", Range::positive()},
              {"delta", 0.0, "margin on the mean NLL", Range::non_negative()}},
             retain_params(0.125, 1.0))},
       &make_as<SimNPO>},
      {{"DPO", "gamma·DPO(win = refusal, lose = forget answer; β) + alpha·retain; IdkDPO",
        with({{"beta", 0.1, "inverse temperature", Range::positive()}}, retain_params(1.0, 1.0))},
       &make_as<DPO>},
      {{"IdkNLL", "gamma·NLL(refusal answers) + alpha·retain", retain_params(1.0, 1.0)}, &make_as<IdkNLL>},
      {{"RMU", "representation misdirection at one hook point",
        {{"gamma", 1.0, "weight of the forget term", Range::non_negative()},
         {"alpha", 1000.0, "weight of the retain term (activation match to the reference)", Range::non_negative()},
         {"steering_coeff", 300.0, "c: the norm of the control vector", Range::positive()},
         {"layer", std::string("resid_post.7"), "hook point whose activation is steered"},
         {"trainable_params", Strings{R"(model\.layers\.(5|6|7)\.mlp\.down_proj\.weight)"},
          "regexes (full match) of the parameters RMU trains"},
         {"seed", 0.0, "seed of the control vector", Range::count()}}},
       &make_as<RMU>},
      {{"UNDIAL", "gamma·CE(θ, softmax(ref logits - β at the label)) + alpha·retain",
        with({{"beta", 10.0, "logit penalty on the label token", Range::non_negative()}}, retain_params(1.0, 0.0))},
       &make_as<UNDIAL>},
      {{"WGA", "gamma·weighted gradient ascent (w = p^β) + alpha·retain",
        with({{"beta", 1.0, "weight exponent", Range::non_negative()}}, retain_params(1.0, 1.0))},
       &make_as<WGA>},
      {{"SatImp", "gamma·weighted ascent (w = p^β1 (1-p)^β2) + alpha·retain",
        with({{"beta1", 5.0, "saturation exponent", Range::non_negative()},
              {"beta2", 1.0, "importance exponent", Range::non_negative()}},
             retain_params(1.0, 0.1))},
       &make_as<SatImp>},
      {{"CE-U", "cross-entropy against the model's own distribution without the label",
        {{"ignore_first_n_answer_tokens", 1.0, "answer tokens left out at the start of each answer", Range::count()}}},
       &make_as<CEU>},
      {{"IHL", "gamma·inverted hinge (margin + p(y) - max_{v≠y} p(v)) + alpha·retain (LoKU; pair with lora.init: fila)",
        with({{"margin", 1.0, "hinge margin", Range::non_negative()}}, retain_params(1.0, 1.0))},
       &make_as<IHL>},
  };
  return entries;
}

}  // namespace

const std::vector<MethodInfo>& method_infos() {
  static const std::vector<MethodInfo> infos = [] {
    std::vector<MethodInfo> v;
    for (const auto& e : registry()) v.push_back(e.info);
    return v;
  }();
  return infos;
}

std::unique_ptr<Method> make_method(const std::string& name, const Params& params) {
  const std::string key = name == "IdkDPO" ? "DPO" : name;
  for (const auto& e : registry()) {
    if (e.info.name == key) return e.make(Args(e.info, params));
  }
  std::string known;
  for (const auto& e : registry()) known += (known.empty() ? "" : ", ") + e.info.name;
  fail("unknown unlearning method '", name, "' (known: ", known, "; IdkDPO = DPO)");
}

}  // namespace lethe::unlearn

// The probes' arithmetic on small fixed cases (docs/probes.md): the quantizer, recovery, the
// verdict.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "lethe/model/blocks.h"
#include "lethe/model/load.h"
#include "lethe/model/quantize.h"
#include "lethe/probe/probe.h"
#include "support/compare.h"
#include "support/errors.h"

namespace lethe::test {
namespace {
using model::QuantSpec;

TEST(Quantize, SpecsParseAndName) {
  const std::vector<std::pair<std::string, QuantSpec>> cases = {
      {"int8", {8, 0, true}}, {"int4-g128", {4, 128, true}}, {"int4-g32-asym", {4, 32, false}},
      {"int8-asym", {8, 0, false}}, {"int2-g16", {2, 16, true}}};
  for (const auto& [text, spec] : cases) {
    EXPECT_EQ(model::parse_quant_spec(text), spec) << text;
    EXPECT_EQ(spec.name(), text);
  }
  EXPECT_EQ(model::parse_quant_spec("int4-g32-sym"), (QuantSpec{4, 32, true}));
  EXPECT_ERROR_HAS(model::parse_quant_spec("q4_0"), "'q4_0' is not a quantization; expected int<bits>[-g<group>]");
  EXPECT_ERROR_HAS(model::parse_quant_spec("int16"), "'int16': bits must be 2..8");
  EXPECT_ERROR_HAS(model::parse_quant_spec("int4-g0"), "'int4-g0': a group has at least one element");
}

// Hand-checked codes: symmetric int8 per channel, s = max|x| / 127; asymmetric int2, s = (max − min) / 3.
TEST(Quantize, HandCheckedCodes) {
  const at::Tensor w = at::tensor({0.5f, -1.0f, 0.25f, 1.0f, 0.0f}).reshape({1, 5});
  const auto q = model::quantize_rows(w, {8, 0, true});
  EXPECT_EQ(q.codes.scalar_type(), at::kChar);
  // 0.5 · 127 = 63.5 rounds away from zero to 64; 0.25 · 127 = 31.75 → 32.
  EXPECT_TRUE(q.codes.equal(at::tensor({64, -127, 32, 127, 0}, at::kChar).reshape({1, 5}))) << q.codes;
  EXPECT_FLOAT_EQ(q.scales.item<float>(), 1.0f / 127.0f);
  const at::Tensor a = at::tensor({1.0f, 2.0f, 3.0f, 4.0f, -2.0f, 2.0f}).reshape({2, 3});
  const auto qa = model::quantize_rows(a, {2, 0, false});  // per row of 3
  EXPECT_EQ(qa.codes.scalar_type(), at::kByte);
  EXPECT_TRUE(qa.codes.equal(at::tensor({0, 2, 3, 3, 0, 2}, at::kByte).reshape({2, 3}))) << qa.codes;
  EXPECT_TRUE(qa.minima.equal(at::tensor({1.0f, -2.0f}).reshape({2, 1})));
  // Row 0: s = 2/3, 2.0 is 1.5 steps above 1.0 and rounds to 2: 1 + 4/3.
  EXPECT_CLOSE("asymmetric round trip", model::dequantize(qa),
               at::tensor({1.0f, 1.0f + 4.0f / 3.0f, 3.0f, 4.0f, -2.0f, 2.0f}).reshape({2, 3}), Tolerance{1e-6, 0});
  // Groups of zeros come back as zeros; values on the grid come back exactly.
  EXPECT_TRUE(model::fake_quantize(at::zeros({2, 8}), {4, 4, true}).equal(at::zeros({2, 8})));
  const at::Tensor grid = at::arange(-7, 8, at::kFloat).mul_(0.25f).reshape({1, 15});
  EXPECT_TRUE(model::fake_quantize(grid, {4, 0, true}).equal(grid));
}

// Every element within half a step of its group: |w − w'| ≤ s / 2, for every form, with a last
// group shorter than the others; codes in range.
TEST(Quantize, RoundTripErrorIsAtMostHalfAStep) {
  at::Generator g = at::detail::createCPUGenerator(7);
  const at::Tensor w = at::randn({6, 100}, g).mul_(at::linspace(0.01, 3.0, 6).unsqueeze(1));
  std::map<std::string, double> rel;
  for (const char* text : {"int8", "int8-asym", "int8-g32", "int4-g32", "int4-g32-asym", "int4-g128",
                           "int4-g128-asym", "int3-g7-asym", "int2-g16"}) {
    SCOPED_TRACE(text);
    const QuantSpec spec = model::parse_quant_spec(text);
    const auto q = model::quantize_rows(w, spec);
    const std::int64_t group = spec.group == 0 ? 100 : std::min<std::int64_t>(spec.group, 100);
    const std::int64_t groups = (100 + group - 1) / group;
    ASSERT_EQ(q.scales.sizes(), (std::vector<std::int64_t>{6, groups}));
    const at::Tensor step = q.scales.repeat_interleave(group, 1).narrow(1, 0, 100);
    const at::Tensor err = (model::dequantize(q) - w).abs();
    EXPECT_TRUE(err.le(step * (0.5 + 1e-5) + 1e-7).all().item<bool>())
        << "worst excess " << (err - step * 0.5).max().item<double>();
    const std::int64_t lo = q.codes.min().item<std::int64_t>(), hi = q.codes.max().item<std::int64_t>();
    if (spec.symmetric) {
      EXPECT_GE(lo, -((1 << (spec.bits - 1)) - 1));
      EXPECT_LE(hi, (1 << (spec.bits - 1)) - 1);
    } else {
      EXPECT_GE(lo, 0);
      EXPECT_LE(hi, (1 << spec.bits) - 1);
    }
    rel[text] = ((model::dequantize(q) - w).norm() / w.norm()).item<double>();
  }
  // More bits or smaller groups, less error (uniform rounding: rms = step / sqrt(12)).
  EXPECT_LT(rel["int8"], 0.01);
  EXPECT_LT(rel["int8-g32"], rel["int8"]);
  EXPECT_LT(rel["int8"], rel["int4-g32"]);
  EXPECT_LT(rel["int4-g32"], rel["int4-g128"]);
  EXPECT_LT(rel["int4-g32-asym"], rel["int4-g32"]);
  EXPECT_LT(rel["int4-g128"], rel["int2-g16"]);
  EXPECT_ERROR_HAS(model::quantize_rows(at::zeros({3}), {8, 0, true}), "a 2-D floating weight is needed");
}

// Every block linear (Linear, and GPT-2's Conv1D along its input dimension) is replaced by its
// quantized value; the embedding, the head and the norms are untouched.
TEST(Quantize, ModelLinearsOnlyAndAlongTheInputDimension) {
  for (const std::string family : {"llama", "gpt2", "phi"}) {
    SCOPED_TRACE(family);
    auto m = model::create_model(model::parse_config(model::tiny_config(family), family), {}, 3);
    std::map<std::string, at::Tensor> before;
    for (const auto& p : m->named_parameters()) before[p.key()] = p.value().clone();
    std::int64_t linears = 0;
    std::map<std::string, at::Tensor> expected;
    for (const auto& item : m->named_modules("", /*include_self=*/false)) {
      if (auto* l = dynamic_cast<model::LinearImpl*>(item.value().get())) {
        if (l->weight.is_same(m->head_weight())) continue;
        ++linears;
        expected[item.key() + ".weight"] = model::fake_quantize(l->weight, {4, 16, false});
      } else if (auto* c = dynamic_cast<model::Conv1DImpl*>(item.value().get())) {
        ++linears;
        expected[item.key() + ".weight"] = model::fake_quantize(c->weight.t(), {4, 16, false}).t();
      }
    }
    const auto s = model::quantize_linears(*m, {4, 16, false});
    EXPECT_EQ(s.tensors, linears);
    EXPECT_GT(s.relative_rms_error, 0.0);
    EXPECT_LT(s.relative_rms_error, 0.2);
    for (const auto& p : m->named_parameters()) {
      const auto e = expected.find(p.key());
      if (e != expected.end()) {
        EXPECT_TRUE(p.value().equal(e->second)) << p.key();
        EXPECT_FALSE(p.value().equal(before[p.key()])) << p.key() << " unchanged";
      } else {
        EXPECT_TRUE(p.value().equal(before[p.key()])) << p.key() << ": not a block linear, must stay";
      }
    }
  }
}

TEST(Probe, LinearCka) {
  // Hand case: centred x = (−1, 0, 1), y = (1, −2, 1)/3 are orthogonal: CKA 0; a multiple: 1.
  const at::Tensor x = at::tensor({1.0, 2.0, 3.0}).reshape({3, 1});
  EXPECT_NEAR(probe::linear_cka(x, at::tensor({1.0, 0.0, 1.0}).reshape({3, 1})), 0.0, 1e-12);
  EXPECT_NEAR(probe::linear_cka(x, x * -2.0 + 5.0), 1.0, 1e-12);
  at::Generator g = at::detail::createCPUGenerator(9);
  const at::Tensor a = at::randn({200, 8}, g, at::kDouble);
  EXPECT_NEAR(probe::linear_cka(a, a), 1.0, 1e-12);
  // Invariant to rotation, isotropic scaling and a shift; not to an unrelated representation.
  const at::Tensor q = std::get<0>(at::linalg_qr(at::randn({8, 8}, g, at::kDouble)));
  EXPECT_NEAR(probe::linear_cka(a, a.mm(q) * 3.0 + 1.0), 1.0, 1e-10);
  EXPECT_LT(probe::linear_cka(a, at::randn({200, 8}, g, at::kDouble)), 0.2);
  // Different widths are fine (items must match); constant or mismatched inputs are errors.
  EXPECT_GT(probe::linear_cka(a, at::cat({a, a.narrow(1, 0, 3)}, 1)), 0.9);
  EXPECT_ERROR_HAS(probe::linear_cka(a, at::ones({200, 4}, at::kDouble)), "CKA: a representation is the same for every item");
  EXPECT_ERROR_HAS(probe::linear_cka(a, a.narrow(0, 0, 10)), "CKA: two (items, features) matrices over the same items");
}

TEST(Probe, RecoveryFormula) {
  // (attacked − oracle) / (target − oracle): 0 at the oracle, 1 back at the target.
  EXPECT_DOUBLE_EQ(*probe::recovery(0.2, 0.2, 0.9), 0.0);
  EXPECT_DOUBLE_EQ(*probe::recovery(0.9, 0.2, 0.9), 1.0);
  EXPECT_DOUBLE_EQ(*probe::recovery(0.55, 0.2, 0.9), 0.5);
  EXPECT_DOUBLE_EQ(*probe::recovery(0.1, 0.2, 0.9), -1.0 / 7.0);  // below the oracle: negative
  EXPECT_DOUBLE_EQ(*probe::recovery(0.3, 0.9, 0.1), 0.75);         // metrics that fall with knowledge too
  EXPECT_FALSE(probe::recovery(0.5, 0.4, 0.4).has_value()) << "target = oracle: nothing to recover";
}

TEST(Probe, VerdictReadsIntervalsOnTheTargetsSide) {
  using probe::Measured;
  using probe::Verdict;
  auto trace = [](Measured base, Measured oracle, std::vector<Measured> att, std::vector<Measured> oatt) {
    probe::MetricTrace t;
    t.key = "forget_Q_A_Prob";
    t.settings = {"quantize int8", "quantize int4-g32"};
    t.baseline = base;
    t.oracle_baseline = oracle;
    t.attacked = std::move(att);
    t.oracle_attacked = std::move(oatt);
    t.target_baseline = Measured{0.9, 0.85, 0.95};
    return t;
  };
  const Measured oracle{0.20, 0.15, 0.25};
  // At the oracle before and after both attacks: removed.
  auto v = probe::judge({trace({0.22, 0.17, 0.27}, oracle, {{0.21, 0.16, 0.26}, {0.24, 0.19, 0.29}},
                               {oracle, {0.25, 0.2, 0.3}})});
  EXPECT_EQ(v.verdict, Verdict::kRemoved) << v.why;
  // At the oracle unattacked, back towards the target after int4: suppressed, naming the attack.
  v = probe::judge({trace({0.22, 0.17, 0.27}, oracle, {{0.21, 0.16, 0.26}, {0.6, 0.55, 0.65}},
                          {oracle, {0.25, 0.2, 0.3}})});
  EXPECT_EQ(v.verdict, Verdict::kSuppressed);
  EXPECT_NE(v.why.find("after quantize int4-g32"), std::string::npos) << v.why;
  // Worse than the attacked oracle on the side away from the target is damage, not recovery.
  v = probe::judge({trace({0.22, 0.17, 0.27}, oracle, {{0.21, 0.16, 0.26}, {0.02, 0.01, 0.03}},
                          {oracle, {0.25, 0.2, 0.3}})});
  EXPECT_EQ(v.verdict, Verdict::kRemoved) << v.why;
  // Without a target any departure counts.
  auto t = trace({0.22, 0.17, 0.27}, oracle, {{0.21, 0.16, 0.26}, {0.02, 0.01, 0.03}}, {oracle, {0.25, 0.2, 0.3}});
  t.target_baseline.reset();
  EXPECT_EQ(probe::judge({t}).verdict, Verdict::kSuppressed);
  // Above the oracle before any attack: not forgotten.
  v = probe::judge({trace({0.5, 0.45, 0.55}, oracle, {{0.5, 0.45, 0.55}, {0.5, 0.45, 0.55}}, {oracle, oracle})});
  EXPECT_EQ(v.verdict, Verdict::kNotForgotten);
  EXPECT_STREQ(probe::verdict_name(v.verdict), "not forgotten");
  EXPECT_ERROR_HAS(probe::find_probe("relearn2"), "unknown probe 'relearn2' (known: quantize, relearn, in_context, representation, parametric, linear; robustness: all of them)");
}

TEST(Probe, LinearProbeSeparatesSeparableClasses) {
  at::Generator g = at::detail::createCPUGenerator(11);
  // Three classes, each a tight cloud around its own centre in 16 dimensions: train and test
  // draws of the same clouds are told apart perfectly.
  const at::Tensor centres = at::randn({3, 16}, g, at::kDouble) * 5;
  auto draw = [&](std::int64_t per_class, std::vector<std::int64_t>& y) {
    std::vector<at::Tensor> rows;
    for (std::int64_t c = 0; c < 3; ++c) {
      rows.push_back(centres[c].unsqueeze(0) + 0.3 * at::randn({per_class, 16}, g, at::kDouble));
      for (std::int64_t i = 0; i < per_class; ++i) y.push_back(c);
    }
    return at::cat(rows, 0);
  };
  std::vector<std::int64_t> ytr, yte;
  const at::Tensor xtr = draw(20, ytr), xte = draw(10, yte);
  EXPECT_DOUBLE_EQ(probe::linear_probe_accuracy(xtr, ytr, xte, yte, 3), 1.0);
  // Labels unrelated to the features: held-out accuracy stays far from 1 while the training
  // rows can be fitted.
  std::vector<std::int64_t> shuffled = ytr;
  for (std::size_t i = 0; i < shuffled.size(); ++i) shuffled[i] = static_cast<std::int64_t>((i * 7 + 3) % 3);
  const at::Tensor noise_tr = at::randn({60, 16}, g, at::kDouble), noise_te = at::randn({30, 16}, g, at::kDouble);
  EXPECT_LT(probe::linear_probe_accuracy(noise_tr, shuffled, noise_te, yte, 3), 0.7);
  EXPECT_ERROR_HAS(probe::linear_probe_accuracy(xtr, {0, 1}, xte, yte, 3), "a label per row");
}

TEST(Probe, LeakIsRougeLRecallAtTheThreshold) {
  // ROUGE-L recall of the answer's 5 tokens (ann was born in oslo, lowercased): the longest
  // common subsequence over 5.
  EXPECT_TRUE(probe::leaks("Ann was born in Oslo.", "ann was born in oslo", 0.5));
  EXPECT_TRUE(probe::leaks("Ann was born in Oslo.", "Oslo, I think. Ann was born there.", 0.5));  // ann was born: 3/5
  EXPECT_FALSE(probe::leaks("Ann was born in Oslo.", "I do not know.", 0.5));
  // "ann was" is 2 of the answer's 5 tokens: 0.4 recall.
  EXPECT_FALSE(probe::leaks("Ann was born in Oslo.", "Ann was", 0.5));
  EXPECT_TRUE(probe::leaks("Ann was born in Oslo.", "Ann was", 0.4));
  EXPECT_TRUE(probe::leaks("Ann was born in Oslo.", "Ann was born", 0.6));
}

}  // namespace
}  // namespace lethe::test

// Training engine: loss formulas against hand computations and finite differences, masking,
// AdamW and schedules, a multi-step golden fine-tune against an independent loop, LoRA / PEFT /
// FILA, bit-identical resume, pairing and config errors.
#include <torch/optim/adamw.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/data/batch.h"
#include "lethe/io/checkpoint.h"
#include "lethe/model/load.h"
#include "lethe/model/score.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"
#include "lethe/train/lora.h"
#include "lethe/train/objectives.h"
#include "lethe/train/optimizer.h"
#include "lethe/run/run.h"
#include "lethe/train/trainer.h"
#include "lethe/unlearn/losses.h"
#include "lethe/unlearn/method.h"
#include "support/compare.h"
#include "support/errors.h"
#include "support/fixtures.h"
#include "support/micro_world.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;
using namespace lethe::unlearn;

// ---- hand computations (plain doubles, no tensor ops) -------------------------------------------

using Mat = std::vector<std::vector<double>>;  // [t][v]

std::vector<double> softmax(const std::vector<double>& x) {
  double mx = *std::max_element(x.begin(), x.end()), s = 0;
  std::vector<double> p(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) s += (p[i] = std::exp(x[i] - mx));
  for (auto& v : p) v /= s;
  return p;
}

at::Tensor tensor3(const std::vector<Mat>& m) {
  const auto b = static_cast<std::int64_t>(m.size()), t = static_cast<std::int64_t>(m[0].size()),
             v = static_cast<std::int64_t>(m[0][0].size());
  at::Tensor out = at::empty({b, t, v}, at::kDouble);
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t j = 0; j < t; ++j)
      for (std::int64_t k = 0; k < v; ++k) out[i][j][k] = m[i][j][k];
  return out;
}

// Two sequences, T = 4, V = 3. Labels: prompt (-100) then answer tokens; row 1 right-padded.
const std::vector<Mat> kLogits = {{{0.2, 1.0, -0.5}, {1.5, -0.3, 0.1}, {0.0, 0.4, 2.0}, {0.3, 0.3, 0.3}},
                                  {{-1.0, 0.5, 0.5}, {0.9, 0.1, -0.2}, {2.2, -1.0, 0.0}, {5.0, 5.0, 5.0}}};
const std::vector<Mat> kRef = {{{0.0, 0.5, 0.0}, {1.0, 0.0, 0.0}, {0.0, 0.0, 1.0}, {0.0, 0.0, 0.0}},
                               {{0.0, 1.0, 0.0}, {0.5, 0.5, 0.0}, {1.0, 0.0, 0.0}, {0.0, 0.0, 0.0}}};
const std::vector<std::vector<std::int64_t>> kLabels = {{-100, 1, 0, 2}, {-100, -100, 0, -100}};

at::Tensor labels_tensor() {
  return at::tensor(std::vector<std::int64_t>{-100, 1, 0, 2, -100, -100, 0, -100}, at::kLong).view({2, 4});
}

// (sequence, position t) pairs that carry loss: labels[t+1] != -100; with that label.
struct Tok {
  int b, t;
  std::int64_t y;
};
std::vector<Tok> label_tokens() {
  std::vector<Tok> out;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t + 1 < 4; ++t)
      if (kLabels[b][t + 1] != -100) out.push_back({b, t, kLabels[b][t + 1]});
  return out;
}

double nll_of(const std::vector<Mat>& logits, int b) {
  double s = 0;
  for (const auto& k : label_tokens())
    if (k.b == b) s -= std::log(softmax(logits[b][k.t])[k.y]);
  return s;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

TEST(Losses, NllAndPreferenceLossesByHand) {
  const at::Tensor logits = tensor3(kLogits), ref = tensor3(kRef), labels = labels_tensor();
  const double n0 = nll_of(kLogits, 0), n1 = nll_of(kLogits, 1);
  const double r0 = nll_of(kRef, 0), r1 = nll_of(kRef, 1);
  at::Tensor seq = sequence_nll(logits, labels);
  EXPECT_NEAR(seq[0].item<double>(), n0, 1e-12);
  EXPECT_NEAR(seq[1].item<double>(), n1, 1e-12);
  EXPECT_NEAR(model::causal_lm_loss(logits, labels).item<double>(), (n0 + n1) / 4.0, 1e-12);  // 3 + 1 label tokens
  const double beta = 0.5;
  // NPO: -(2/β) mean log σ(β (nll - nll_ref)).
  const double npo = -(2 / beta) * 0.5 * (std::log(sigmoid(beta * (n0 - r0))) + std::log(sigmoid(beta * (n1 - r1))));
  EXPECT_NEAR(npo_loss(seq, sequence_nll(ref, labels), beta).item<double>(), npo, 1e-12);
  // SimNPO: -(2/β) mean log σ(β (nll/|y| - δ)); |y| counted on the unshifted labels (3 and 1).
  const double delta = 0.1;
  const double sim = -(2 / beta) * 0.5 *
                     (std::log(sigmoid(beta * (n0 / 3 - delta))) + std::log(sigmoid(beta * (n1 / 1 - delta))));
  EXPECT_NEAR(simnpo_loss(seq, label_counts(labels), beta, delta).item<double>(), sim, 1e-12);
  // DPO with a winner: -(2/β) mean log σ(β((r_w) - (r_l))), r = nll_ref - nll.
  at::Tensor win = seq.flip(0), win_ref = sequence_nll(ref, labels).flip(0);
  const double rw0 = r1 - n1, rw1 = r0 - n0, rl0 = r0 - n0, rl1 = r1 - n1;
  const double dpo = -(2 / beta) * 0.5 * (std::log(sigmoid(beta * (rw0 - rl0))) + std::log(sigmoid(beta * (rw1 - rl1))));
  EXPECT_NEAR(dpo_loss(win, win_ref, seq, sequence_nll(ref, labels), beta).item<double>(), dpo, 1e-12);
}

TEST(Losses, TokenLossesByHand) {
  const at::Tensor logits = tensor3(kLogits), ref = tensor3(kRef), labels = labels_tensor();
  const auto toks = label_tokens();
  double kl = 0, und = 0, wga = 0, sat = 0, ihl = 0;
  const double beta = 2.0;
  for (const auto& k : toks) {
    const auto p = softmax(kLogits[k.b][k.t]);
    const auto q = softmax(kRef[k.b][k.t]);
    for (int v = 0; v < 3; ++v) kl += q[v] * (std::log(q[v]) - std::log(p[v]));
    std::vector<double> teacher = kRef[k.b][k.t];
    teacher[k.y] -= beta;
    const auto tq = softmax(teacher);
    for (int v = 0; v < 3; ++v) und -= tq[v] * std::log(p[v]);
    const double py = p[k.y];
    wga += std::pow(py, beta) * std::log(py);
    sat += std::pow(py, 3.0) * std::pow(1 - py, 2.0) * std::log(py);
    double other = -1;
    for (int v = 0; v < 3; ++v)
      if (v != k.y) other = std::max(other, p[v]);
    ihl += std::max(0.0, 1.0 + py - other);
  }
  const double n = static_cast<double>(toks.size());
  EXPECT_NEAR(kl_to_reference(logits, ref, labels).item<double>(), kl / n, 1e-12);
  EXPECT_NEAR(undial_loss(logits, ref, labels, beta).item<double>(), und / n, 1e-12);
  EXPECT_NEAR(wga_loss(logits, labels, beta).item<double>(), wga / n, 1e-12);
  EXPECT_NEAR(satimp_loss(logits, labels, 3.0, 2.0).item<double>(), sat / n, 1e-12);
  EXPECT_NEAR(ihl_loss(logits, labels, 1.0).item<double>(), ihl / n, 1e-12);
}

TEST(Losses, CeuByHand) {
  const at::Tensor logits = tensor3(kLogits), labels = labels_tensor();
  // Leaving out each sequence's first answer token leaves only sequence 0's tokens 2 and 3.
  double ceu = 0;
  int n = 0;
  for (const auto& k : label_tokens()) {
    if ((k.b == 0 && k.t == 0) || k.b == 1) continue;  // first answer token of each sequence
    std::vector<double> target = kLogits[k.b][k.t];
    target[k.y] = -INFINITY;
    const auto q = softmax(target);
    const auto p = softmax(kLogits[k.b][k.t]);
    for (int v = 0; v < 3; ++v)
      if (q[v] > 0) ceu -= q[v] * std::log(p[v]);
    ++n;
  }
  EXPECT_NEAR(ceu_loss(logits, labels, 1).item<double>(), ceu / n, 1e-12);
}

TEST(Losses, ActivationMseByHand) {
  at::Tensor act = at::tensor({1.0, 2.0, 3.0, 5.0, 0.0, 0.0}, at::kDouble).view({1, 3, 2});
  at::Tensor target = at::tensor({1.0, 0.0}, at::kDouble).view({1, 1, 2});
  at::Tensor mask = at::tensor({1, 0, 1}, at::kLong).view({1, 3}).ne(0);
  // positions 0 and 2: mean_d (a - u)² = (0 + 4)/2 = 2 and (1 + 0)/2 = 0.5 -> (2 + 0.5) / 2
  EXPECT_NEAR(activation_mse(act, target, mask).item<double>(), 1.25, 1e-12);
}

// Central finite differences of a scalar loss of the logits, on every element.
void check_gradient(const std::string& what, const std::function<at::Tensor(const at::Tensor&)>& f) {
  at::Tensor x = tensor3(kLogits).requires_grad_(true);
  f(x).backward();
  at::Tensor analytic = x.grad().clone();
  at::Tensor numeric = at::zeros_like(analytic);
  const double eps = 1e-6;
  torch::NoGradGuard ng;
  at::Tensor base = tensor3(kLogits);
  auto flat = numeric.view({-1});
  for (std::int64_t i = 0; i < base.numel(); ++i) {
    at::Tensor up = base.clone(), down = base.clone();
    up.view({-1})[i] += eps;
    down.view({-1})[i] -= eps;
    flat[i] = (f(up).item<double>() - f(down).item<double>()) / (2 * eps);
  }
  EXPECT_CLOSE(what + " gradient vs finite differences", analytic, numeric, Tolerance{1e-7, 1e-6});
}

TEST(Losses, GradientsMatchFiniteDifferences) {
  const at::Tensor ref = tensor3(kRef), labels = labels_tensor();
  const at::Tensor ref_nll = sequence_nll(ref, labels);
  check_gradient("NPO", [&](const at::Tensor& x) { return npo_loss(sequence_nll(x, labels), ref_nll, 0.3); });
  check_gradient("SimNPO", [&](const at::Tensor& x) {
    return simnpo_loss(sequence_nll(x, labels), label_counts(labels), 2.5, 0.2);
  });
  check_gradient("IHL", [&](const at::Tensor& x) { return ihl_loss(x, labels, 1.0); });
  check_gradient("UNDIAL", [&](const at::Tensor& x) { return undial_loss(x, ref, labels, 3.0); });
  check_gradient("KL", [&](const at::Tensor& x) { return kl_to_reference(x, ref, labels); });
  // (WGA and SatImp detach their weights by definition, so finite differences of the whole
  // expression are not their gradient.)
}

// Changing logits where no label is predicted (prompt positions, padding, the last position)
// changes no loss — the masking OpenUnlearning's KL and UNDIAL get wrong.
TEST(Losses, PromptAndPaddingPositionsDoNotCount) {
  const at::Tensor labels = labels_tensor();
  at::Tensor logits = tensor3(kLogits), ref = tensor3(kRef);
  at::Tensor noisy = logits.clone(), noisy_ref = ref.clone();
  at::Generator g = at::detail::createCPUGenerator(3);
  for (int b = 0; b < 2; ++b) {
    for (int t = 0; t < 4; ++t) {
      if (t + 1 < 4 && kLabels[b][t + 1] != -100) continue;
      noisy[b][t].copy_(at::randn({3}, g, at::kDouble) * 5);
      noisy_ref[b][t].copy_(at::randn({3}, g, at::kDouble) * 5);
    }
  }
  auto same = [&](const std::string& what, const at::Tensor& a, const at::Tensor& b) {
    EXPECT_NEAR(a.item<double>(), b.item<double>(), 1e-12) << what;
  };
  same("nll", model::causal_lm_loss(logits, labels), model::causal_lm_loss(noisy, labels));
  same("kl", kl_to_reference(logits, ref, labels), kl_to_reference(noisy, noisy_ref, labels));
  same("undial", undial_loss(logits, ref, labels, 2.0), undial_loss(noisy, noisy_ref, labels, 2.0));
  same("wga", wga_loss(logits, labels, 1.0), wga_loss(noisy, labels, 1.0));
  same("satimp", satimp_loss(logits, labels, 5, 1), satimp_loss(noisy, labels, 5, 1));
  same("ceu", ceu_loss(logits, labels, 0), ceu_loss(noisy, labels, 0));
  same("ihl", ihl_loss(logits, labels), ihl_loss(noisy, labels));
  same("npo", npo_loss(sequence_nll(logits, labels), sequence_nll(ref, labels), 0.1),
       npo_loss(sequence_nll(noisy, labels), sequence_nll(noisy_ref, labels), 0.1));
}

// ---- methods on a model: padding never counts ---------------------------------------------------

std::shared_ptr<model::CausalLM> tiny_llama(std::int64_t vocab = 50) {
  auto cfg = model::parse_config(
      R"({"model_type":"llama","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,
          "num_key_value_heads":2,"intermediate_size":48,"vocab_size":)" + std::to_string(vocab) +
          R"(,"eos_token_id":2,"bos_token_id":1})",
      "tiny.json");
  auto m = model::create_model(cfg, {}, 5);
  torch::NoGradGuard ng;
  for (auto& p : m->parameters())
    if (p.dim() > 1) p.mul_(10.0);
  return m;
}

data::Example example(std::vector<std::int64_t> ids, std::size_t prompt) {
  data::Example e{ids, ids};
  for (std::size_t i = 0; i < prompt; ++i) e.labels[i] = lethe::kIgnoreIndex;
  return e;
}

TEST(Methods, PaddingTokensNeverChangeALossTerm) {
  auto m = tiny_llama();
  auto ref = model::clone_model(*m);
  m->train();
  const std::vector<data::Example> ex = {example({1, 5, 6, 7, 8, 9, 2}, 3), example({1, 10, 11, 12, 2}, 2),
                                         example({1, 13, 14, 2}, 2)};
  std::vector<const data::Example*> ptrs = {&ex[0], &ex[1], &ex[2]};
  for (const auto& info : method_infos()) {
    if (info.name == "RMU") continue;  // covered below with its hook point
    auto method = make_method(info.name);
    UnlearnBatch a{data::collate(ptrs, 0), data::collate(ptrs, 0), data::collate(ptrs, 0)};
    UnlearnBatch b{data::collate(ptrs, 17), data::collate(ptrs, 23), data::collate(ptrs, 31)};
    torch::NoGradGuard ng;
    LossTerms la = method->loss(*m, ref.get(), a), lb = method->loss(*m, ref.get(), b);
    ASSERT_EQ(la.terms.size(), lb.terms.size()) << info.name;
    for (std::size_t i = 0; i < la.terms.size(); ++i) {
      EXPECT_NEAR(la.terms[i].second.item<double>(), lb.terms[i].second.item<double>(), 1e-5)
          << info.name << " term " << la.terms[i].first;
    }
  }
  auto rmu = make_method("RMU", {{"layer", std::string("resid_post.1")},
                                 {"trainable_params", std::vector<std::string>{".*"}}, {"steering_coeff", 5.0}});
  torch::NoGradGuard ng;
  UnlearnBatch a{data::collate(ptrs, 0), data::collate(ptrs, 0), {}};
  UnlearnBatch b{data::collate(ptrs, 17), data::collate(ptrs, 23), {}};
  EXPECT_NEAR(rmu->loss(*m, ref.get(), a).total.item<double>(), rmu->loss(*m, ref.get(), b).total.item<double>(), 1e-4);
}

TEST(Methods, RegistryRejectsUnknownsWithTheAcceptedList) {
  try {
    make_method("NPOO");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("known: GradAscent, GradDiff, NPO"), std::string::npos) << e.what();
  }
  try {
    make_method("NPO", {{"betta", 0.1}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown parameter 'betta' (accepted: beta, gamma, alpha, retain_loss_type)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(make_method("NPO", {{"beta", std::string("x")}}), Error);
  EXPECT_THROW(make_method("GradDiff", {{"retain_loss_type", std::string("L2")}}), Error);
  EXPECT_EQ(make_method("IdkDPO")->name(), "DPO");
  EXPECT_TRUE(make_method("NPO")->needs_reference());
  EXPECT_FALSE(make_method("SimNPO")->needs_reference());
  EXPECT_TRUE(make_method("GradDiff", {{"retain_loss_type", std::string("KL")}})->needs_reference());
  EXPECT_FALSE(make_method("UNDIAL")->needs_retain()) << "UNDIAL's reference default alpha is 0";
}

// ---- optimizer and schedules ------------------------------------------------------------------------

TEST(Optimizer, AdamWMatchesHandComputedSteps) {
  at::Tensor p = at::tensor({1.0}, at::kDouble);
  train::AdamWConfig c{0.1, 0.9, 0.999, 1e-8, 0.01};
  train::AdamW opt({{"p", p}}, c);
  double x = 1.0, m = 0, v = 0;
  const double grads[] = {0.5, -0.25, 0.125};
  for (int t = 1; t <= 3; ++t) {
    p.mutable_grad() = at::tensor({grads[t - 1]}, at::kDouble);
    opt.step(0.1);
    x *= 1 - 0.1 * 0.01;
    m = 0.9 * m + 0.1 * grads[t - 1];
    v = 0.999 * v + 0.001 * grads[t - 1] * grads[t - 1];
    x -= 0.1 / (1 - std::pow(0.9, t)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8);
    EXPECT_NEAR(p.item<double>(), x, 1e-15) << "step " << t;
  }
}

TEST(Optimizer, AdamWMatchesTorchOptim) {
  at::Generator g = at::detail::createCPUGenerator(1);
  at::Tensor a = at::randn({4, 3}, g, at::kDouble), b = a.clone();
  train::AdamW ours({{"w", a}}, {0.05, 0.8, 0.99, 1e-6, 0.1});
  torch::optim::AdamW theirs({b}, torch::optim::AdamWOptions(0.05).betas({0.8, 0.99}).eps(1e-6).weight_decay(0.1));
  for (int s = 0; s < 6; ++s) {
    at::Tensor g1 = at::randn({4, 3}, g, at::kDouble);
    a.mutable_grad() = g1.clone();
    b.mutable_grad() = g1.clone();
    ours.step(0.05);
    theirs.step();
  }
  EXPECT_CLOSE("AdamW vs torch::optim::AdamW", a, b, Tolerance{1e-14, 0});
}

TEST(Optimizer, SchedulesByHand) {
  train::Schedule lin{"linear", 2, 1.0, 10};
  EXPECT_DOUBLE_EQ(lin.at(0), 0.0);
  EXPECT_DOUBLE_EQ(lin.at(1), 0.5);
  EXPECT_DOUBLE_EQ(lin.at(2), 1.0);
  EXPECT_DOUBLE_EQ(lin.at(6), 0.5);
  EXPECT_DOUBLE_EQ(lin.at(10), 0.0);
  train::Schedule cos{"cosine", 2, 1.0, 10};
  EXPECT_NEAR(cos.at(6), 0.5, 1e-12);
  EXPECT_NEAR(cos.at(4), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_DOUBLE_EQ((train::Schedule{"constant", 5, 0.3, 10}.at(0)), 0.3);
  EXPECT_DOUBLE_EQ((train::Schedule{"constant_with_warmup", 4, 1.0, 10}.at(1)), 0.25);
  EXPECT_DOUBLE_EQ((train::Schedule{"constant_with_warmup", 4, 1.0, 10}.at(7)), 1.0);
  EXPECT_THROW((train::Schedule{"exponential", 0, 1.0, 10}.at(0)), Error);
  at::Tensor w = at::ones({2}, at::kDouble);
  w.mutable_grad() = at::tensor({3.0, 4.0}, at::kDouble);
  EXPECT_DOUBLE_EQ(train::clip_grad_norm({{"w", w}}, 1.0), 5.0);
  EXPECT_NEAR(w.grad().norm().item<double>(), 1.0, 1e-6);
}

// ---- the trainer ---------------------------------------------------------------------------------------

std::vector<double> logged_losses(const fs::path& run) {
  std::vector<double> out;
  std::istringstream in(read_file(run / "train_log.jsonl"));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

// Five AdamW steps of the trainer on a golden HF model reproduce an independent loop written
// with torch::optim::AdamW and the causal-LM loss.
TEST(Trainer, MultiStepFinetuneMatchesAnIndependentLoop) {
  const fs::path dir = golden_dir() / "llama_gqa_untied";
  LETHE_NEED_FIXTURE(dir / "golden.safetensors");
  io::SafetensorsFile golden(dir / "golden.safetensors");
  at::Tensor ids = golden.load("loss.input_ids");
  std::vector<data::Example> ex;
  for (std::int64_t r = 0; r < ids.size(0); ++r) {
    std::vector<std::int64_t> row(ids[r].data_ptr<std::int64_t>(), ids[r].data_ptr<std::int64_t>() + ids.size(1));
    ex.push_back({row, row});
  }
  auto ours = model::load_model(dir / "model");
  ours->train();
  train::TrainerConfig c;
  c.epochs = 5;
  c.batch_size = 3;
  c.max_grad_norm = 0.0;
  c.optimizer = {1e-3, 0.9, 0.999, 1e-8, 0.01};
  c.schedule = "constant";
  c.run_dir = temp_dir("golden-ft");
  c.progress = false;
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& item : ours->named_parameters()) params.emplace_back(item.key(), item.value());
  train::FinetuneObjective obj(*ours, ex, 0);
  train::train(params, obj, c);
  const auto losses = logged_losses(c.run_dir);

  auto ref = model::load_model(dir / "model");
  ref->train();
  torch::optim::AdamW opt(ref->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
  std::vector<double> want;
  for (int s = 0; s < 5; ++s) {
    opt.zero_grad();
    at::Tensor loss = model::causal_lm_loss(ref->forward(ids).logits, ids);
    want.push_back(loss.item<double>());
    loss.backward();
    opt.step();
  }
  ASSERT_EQ(losses.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(losses[i], want[i], 1e-5) << "step " << i + 1;
  EXPECT_LT(want.back(), want.front());
  auto pr = ref->named_parameters();
  for (const auto& [name, p] : params) EXPECT_CLOSE("param " + name, p, pr[name], Tolerance{1e-5, 1e-5});
}

TEST(Data, LengthGroupsCutPaddingAndCoverTheBatch) {
  std::vector<std::int64_t> mixed;
  for (int i = 0; i < 28; ++i) mixed.push_back(20 + i % 11);
  for (int i = 0; i < 4; ++i) mixed.insert(mixed.begin() + 7 * i, 128);
  const auto g = data::length_groups(mixed, 256);
  ASSERT_EQ(g.size(), 2u) << "QA pairs and text windows";
  std::vector<std::size_t> all;
  for (const auto& x : g) all.insert(all.end(), x.begin(), x.end());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i) << "every sequence once";
  for (std::size_t k : g[1]) EXPECT_EQ(mixed[k], 128);
  EXPECT_EQ(data::length_groups({20, 24, 31, 22, 27}, 256).size(), 1u) << "similar lengths stay together";
  EXPECT_EQ(data::length_groups({5, 9}, 0).size(), 2u) << "free forward passes: no padding at all";
  EXPECT_TRUE(data::length_groups({}, 256).empty());
}

TEST(Trainer, SplitBatchLossAndGradientsEqualThePaddedBatch) {
  MicroWorld w = make_micro_world("split");
  auto tok = text::load_tokenizer(w.model_dir);
  auto ex = data::qa_examples(*tok, text::PromptTemplate::named("plain"), w.records, 64);
  std::string story;
  for (int i = 0; i < 40; ++i) story += "Lily went home and Tom stayed at the market. ";
  for (auto& c : data::pretraining_chunks(*tok, {story}, 60)) ex.push_back(std::move(c));
  auto m = model::create_model(model::read_config(w.model_dir), {}, 3);
  std::vector<std::size_t> idx(ex.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::vector<std::int64_t> lengths;
  for (const auto& e : ex) lengths.push_back(static_cast<std::int64_t>(e.input_ids.size()));
  ASSERT_GT(data::length_groups(lengths, train::FinetuneObjective::kGroupOverheadTokens).size(), 1u)
      << "the batch must actually be split for this test to mean anything";
  auto grads = [&](const at::Tensor& loss) {
    for (auto& p : m->parameters()) p.mutable_grad() = at::Tensor();
    loss.backward();
    std::map<std::string, at::Tensor> g;
    for (auto& item : m->named_parameters()) g[item.key()] = item.value().grad().clone();
    return g;
  };
  for (auto& p : m->parameters()) p.set_requires_grad(true);
  train::FinetuneObjective obj(*m, ex, 2);
  const at::Tensor split = obj.loss(idx, idx, 0).total;
  const auto gs = grads(split);
  std::vector<const data::Example*> all;
  for (const auto& e : ex) all.push_back(&e);
  const data::Batch b = data::collate(all, 2);
  const at::Tensor padded = model::causal_lm_loss(train::logits_of(*m, b), b.labels);
  const auto gp = grads(padded);
  EXPECT_NEAR(split.item<double>(), padded.item<double>(), 1e-5);
  for (const auto& [name, g] : gp) EXPECT_CLOSE("grad " + name, gs.at(name), g, Tolerance{1e-5, 1e-4});
}

// An objective that crashes (as a killed process would) once a step is reached.
class CrashAt : public train::Objective {
 public:
  CrashAt(train::Objective& inner, std::int64_t calls) : inner_(inner), left_(calls) {}
  std::size_t size() const override { return inner_.size(); }
  std::vector<std::size_t> epoch_extras(std::uint64_t e) const override { return inner_.epoch_extras(e); }
  LossTerms loss(const std::vector<std::size_t>& i, const std::vector<std::size_t>& p, std::uint64_t e) override {
    if (left_-- == 0) throw std::runtime_error("simulated crash");
    return inner_.loss(i, p, e);
  }
  std::int64_t tokens(const std::vector<std::size_t>& i) const override { return inner_.tokens(i); }

 private:
  train::Objective& inner_;
  std::int64_t left_;
};

// Reports a scripted "retain" term per step beside a trivial trainable loss.
class ScriptedRetain : public train::Objective {
 public:
  ScriptedRetain(at::Tensor w, std::vector<double> retain, bool guarded = true)
      : w_(std::move(w)), retain_(std::move(retain)), guarded_(guarded) {}
  std::size_t size() const override { return retain_.size(); }
  LossTerms loss(const std::vector<std::size_t>&, const std::vector<std::size_t>&, std::uint64_t) override {
    const at::Tensor r = at::full({}, retain_[calls_++]);
    return {(w_ * w_).sum(), {{"retain", r}}, guarded_ ? r : at::Tensor()};
  }
  std::int64_t tokens(const std::vector<std::size_t>&) const override { return 1; }

 private:
  at::Tensor w_;
  std::vector<double> retain_;
  bool guarded_;
  std::size_t calls_ = 0;
};

TEST(Trainer, CollapseGuardNeedsBothTheFactorAndTheFloor) {
  auto run = [](const std::vector<double>& retain, const std::string& name, bool guarded = true) {
    at::Tensor w = at::ones({3});
    ScriptedRetain obj(w, retain, guarded);
    train::TrainerConfig c;
    c.batch_size = 1;
    c.progress = false;
    c.guard.action = "stop";
    c.run_dir = temp_dir(name);
    return train::train({{"w", w}}, obj, c);
  };
  // A memorised retain set: 60x its first value is still far from collapse.
  auto r = run({0.01, 0.02, 0.3, 0.6}, "guard-floor");
  EXPECT_FALSE(r.stopped) << r.stop_reason;
  EXPECT_EQ(r.steps, 4);
  r = run({0.01, 0.02, 1.5, 0.6}, "guard-stop");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.steps, 3);
  EXPECT_NE(r.stop_reason.find("retain loss 1.5 exceeds 5x"), std::string::npos) << r.stop_reason;
  r = run({0.5, 0.6, 2.0, 2.4}, "guard-factor");  // above the floor, under 5x
  EXPECT_FALSE(r.stopped) << r.stop_reason;
  // The guard reads the typed slot, not a term that happens to be called "retain".
  r = run({0.01, 0.02, 1.5, 0.6}, "guard-untyped", /*guarded=*/false);
  EXPECT_FALSE(r.stopped) << r.stop_reason;
}

// Records which anchor examples each epoch visits; the loss is a trivial trainable one.
class VisitRecorder : public train::Objective {
 public:
  VisitRecorder(at::Tensor w, std::size_t every, std::vector<std::vector<std::size_t>> extras)
      : w_(std::move(w)), every_(every), extras_(std::move(extras)) {}
  std::size_t size() const override { return every_; }
  std::vector<std::size_t> epoch_extras(std::uint64_t e) const override {
    return e < extras_.size() ? extras_[e] : std::vector<std::size_t>{};
  }
  LossTerms loss(const std::vector<std::size_t>& idx, const std::vector<std::size_t>&, std::uint64_t e) override {
    for (auto i : idx) visits[e].push_back(i);
    return {(w_ * w_).sum(), {}, {}};
  }
  std::int64_t tokens(const std::vector<std::size_t>& idx) const override { return static_cast<std::int64_t>(idx.size()); }
  std::map<std::uint64_t, std::vector<std::size_t>> visits;

 private:
  at::Tensor w_;
  std::size_t every_;
  std::vector<std::vector<std::size_t>> extras_;
};

TEST(Trainer, InsertedExamplesAreVisitedOnlyInTheirEpochs) {
  at::Tensor w = at::ones({2});
  // Five every-epoch examples; 5 and 6 only in epoch 1, 7 twice in epoch 2.
  VisitRecorder obj(w, 5, {{}, {5, 6}, {7, 7}});
  train::TrainerConfig c;
  c.epochs = 4;
  c.batch_size = 2;
  c.progress = false;
  c.run_dir = temp_dir("insert-visits");
  // Micro-batches per epoch: 3, 4, 4, 3.
  EXPECT_EQ(train::planned_steps(c, obj), 14);
  const auto r = train::train({{"w", w}}, obj, c);
  EXPECT_EQ(r.steps, 14);
  auto sorted = [](std::vector<std::size_t> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  const std::vector<std::size_t> base = {0, 1, 2, 3, 4};
  EXPECT_EQ(sorted(obj.visits[0]), base);
  EXPECT_EQ(sorted(obj.visits[1]), (std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(sorted(obj.visits[2]), (std::vector<std::size_t>{0, 1, 2, 3, 4, 7, 7}));
  EXPECT_EQ(sorted(obj.visits[3]), base);
  // Shuffled in among the rest, not appended at the end of the epoch.
  EXPECT_NE(obj.visits[1], (std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(Trainer, ResumedRunEndsBitIdentical) {
  MicroWorld w = make_micro_world("resume");
  auto tok = text::load_tokenizer(w.model_dir);
  const auto ex = data::qa_examples(*tok, text::PromptTemplate::named("plain"), w.records, 64);
  auto cfg = model::read_config(w.model_dir);
  train::TrainerConfig c;
  c.epochs = 4;
  c.batch_size = 3;
  c.grad_accum = 2;
  c.optimizer.lr = 1e-3;
  c.checkpoint_every = 3;
  c.progress = false;
  c.fingerprint = "test";
  auto run_to_end = [&](const fs::path& dir, std::int64_t crash_after_calls) {
    auto m = model::create_model(cfg, {}, 7);
    m->train();
    std::vector<std::pair<std::string, at::Tensor>> params;
    for (auto& item : m->named_parameters()) params.emplace_back(item.key(), item.value());
    train::FinetuneObjective obj(*m, ex, 2);
    train::TrainerConfig cc = c;
    cc.run_dir = dir;
    if (crash_after_calls >= 0) {
      CrashAt crash(obj, crash_after_calls);
      EXPECT_THROW(train::train(params, crash, cc), std::runtime_error);
      // A fresh process: new model, same config -> resumes from the newest checkpoint.
      m = model::create_model(cfg, {}, 7);
      m->train();
      params.clear();
      for (auto& item : m->named_parameters()) params.emplace_back(item.key(), item.value());
      train::FinetuneObjective obj2(*m, ex, 2);
      auto r = train::train(params, obj2, cc);
      EXPECT_EQ(r.resumed_from, 6);
      return std::make_pair(m, logged_losses(dir));
    }
    train::train(params, obj, cc);
    return std::make_pair(m, logged_losses(dir));
  };
  auto [a, la] = run_to_end(temp_dir("resume-a"), -1);
  auto [b, lb] = run_to_end(temp_dir("resume-b"), 15);  // 15 micro-batches ≈ step 8
  ASSERT_EQ(la.size(), lb.size());
  for (std::size_t i = 0; i < la.size(); ++i) EXPECT_EQ(la[i], lb[i]) << "logged loss of step " << i + 1;
  auto pb = b->named_parameters();
  for (auto& item : a->named_parameters()) {
    EXPECT_TRUE(item.value().equal(pb[item.key()])) << item.key() << " differs after resume";
  }
}

// A run with train.gradient_checkpointing ends with the same weights, bit for bit, as without
// (full fine-tuning and LoRA), through the config, the run's stages and the trainer.
TEST(Trainer, GradientCheckpointingRunsEndBitIdentical) {
  MicroWorld w = make_micro_world("ckpt-run");
  for (const bool lora : {false, true}) {
    SCOPED_TRACE(lora ? "lora" : "full");
    auto run_with = [&](bool checkpoint) {
      const fs::path out = temp_dir(std::string("ckpt-run-") + (lora ? "l" : "f") + (checkpoint ? "1" : "0")) / "run";
      Json tree = {{"model", w.model_dir.string()}, {"from_scratch", true}, {"output_dir", out.string()}, {"seed", 3},
                   {"data", {{"train", w.all.string()}, {"max_length", 64}}},
                   {"train", {{"max_steps", 3}, {"batch_size", 4}, {"lr", 1e-3}, {"progress", false},
                              {"gradient_checkpointing", checkpoint}}}};
      if (lora) tree["lora"] = {{"rank", 4}, {"dropout", 0.0}};
      run::run(run::parse_run_config(tree, out.parent_path(), run::RunKind::kFinetune));
      return read_file(out / "model" / "model.safetensors");
    };
    const std::string plain = run_with(false);
    EXPECT_FALSE(plain.empty());
    EXPECT_TRUE(plain == run_with(true)) << "the checkpointed run's weights differ";
  }
}

// model.dtype: bfloat16 holds the frozen weights in bf16 (the LoRA base, the reference) and
// computes in fp32, so a run on a bf16 checkpoint trains exactly as the fp32 run on it: the
// same adapter bit for bit (LoRA), the same model (full, whose reference copy is then bf16).
// The merged model is the base's dtype: W + scale·BA rounded to bf16, as PEFT merges.
TEST(Trainer, HalfPrecisionFrozenWeightsTrainAsFloat) {
  MicroWorld w = make_micro_world("half-run");
  const fs::path root = temp_dir("half-run");
  {
    const fs::path out = root / "ft";
    Json tree = {{"model", w.model_dir.string()}, {"from_scratch", true}, {"output_dir", out.string()}, {"seed", 3},
                 {"data", {{"train", w.all.string()}, {"max_length", 64}}},
                 {"train", {{"max_steps", 3}, {"batch_size", 4}, {"lr", 1e-2}, {"progress", false}}}};
    run::run(run::parse_run_config(tree, root, run::RunKind::kFinetune));
    auto m = model::load_model(out / "model");
    model::save_model(*m, root / "bf16", {at::kBFloat16});
    text::install_tokenizer(out / "model", root / "bf16", m->config().vocab_size);
  }
  for (const bool lora : {true, false}) {
    SCOPED_TRACE(lora ? "lora" : "full");
    auto run_with = [&](const std::string& dtype) {
      const fs::path out = root / ((lora ? "l-" : "f-") + dtype);
      Json tree = {{"model", {{"path", (root / "bf16").string()}, {"dtype", dtype}}}, {"output_dir", out.string()},
                   {"seed", 1}, {"method", {{"name", "NPO"}}},
                   {"data", {{"forget", w.forget.string()}, {"retain", w.retain.string()}, {"max_length", 64}}},
                   {"train", {{"max_steps", 2}, {"batch_size", 2}, {"lr", 1e-2}, {"progress", false}}}};
      if (lora) tree["lora"] = {{"rank", 4}, {"dropout", 0.0}};
      run::run(run::parse_run_config(tree, root, run::RunKind::kUnlearn));
      return out;
    };
    const fs::path half = run_with("bfloat16"), full = run_with("float32");
    if (lora) {
      EXPECT_TRUE(read_file(half / "adapter" / "adapter_model.safetensors") ==
                  read_file(full / "adapter" / "adapter_model.safetensors"))
          << "the adapters trained over a bf16 base differ from those over its fp32 values";
      EXPECT_EQ(nlohmann::json::parse(read_file(half / "model" / "config.json"))["torch_dtype"], "bfloat16");
      io::Checkpoint hm = io::Checkpoint::open(half / "model"), fm = io::Checkpoint::open(full / "model");
      std::size_t differ = 0;
      for (const auto& name : fm.names()) {
        const at::Tensor h = hm.load(name), f = fm.load(name);
        EXPECT_EQ(h.scalar_type(), at::kBFloat16) << name;
        EXPECT_TRUE(h.equal(f.to(at::kBFloat16))) << name << ": the merged weight is W + scale·BA rounded to bf16";
        differ += !h.to(at::kFloat).equal(f);
      }
      EXPECT_GT(differ, 0u) << "the merge changed no weight";
    } else {
      EXPECT_TRUE(read_file(half / "model" / "model.safetensors") == read_file(full / "model" / "model.safetensors"))
          << "a full run with a bf16 reference differs from the fp32 run";
      EXPECT_EQ(nlohmann::json::parse(read_file(half / "model" / "config.json"))["torch_dtype"], "float32")
          << "trained weights stay fp32";
    }
  }
}

// The chunked label path (the head run a chunk of positions at a time, again in backward) is
// the plain one up to float rounding: values, and the gradients reaching LoRA adapters through the hidden
// states — for every family (soft-capped and biased heads too), over several chunks (256
// positions each at a vocabulary of 32,768) and with a short last chunk merged.
TEST(Losses, ChunkedLabelPathEqualsFullLogits) {
  for (const std::string& family : model::supported_model_types()) {
    SCOPED_TRACE(family);
    nlohmann::json j = nlohmann::json::parse(model::tiny_config(family));
    j["vocab_size"] = 32768;
    auto m = model::create_model(model::parse_config(j.dump(), family), {}, 4);
    auto ad = train::LoraAdapter::attach(*m, {2, 4.0, 0.0, "", "default"}, 5);
    {
      torch::NoGradGuard ng;
      for (auto& [name, t] : ad->named_parameters())
        if (name.find("lora_B") != std::string::npos) t.normal_(0.0, 0.3, at::detail::createCPUGenerator(6));
    }
    for (const std::int64_t t : {150, 137}) {  // 298 positions: 256 + 42; 272: 256 + 16, merged
      if (t == 137 && family != "llama") continue;  // the merge once: the logits dominate the test's time
      SCOPED_TRACE(t);
      std::vector<data::Example> ex(2);
      std::mt19937_64 rng(static_cast<std::uint64_t>(t));
      for (std::size_t r = 0; r < ex.size(); ++r) {
        ex[r].input_ids.resize(static_cast<std::size_t>(t) - r * 5);
        for (auto& id : ex[r].input_ids) id = static_cast<std::int64_t>(3 + rng() % 32700);
        ex[r].labels = ex[r].input_ids;
        std::fill_n(ex[r].labels.begin(), 7, lethe::kIgnoreIndex);
      }
      const data::Batch b = data::collate({&ex[0], &ex[1]}, 0);
      ASSERT_TRUE(model::chunked_label_logprobs_applies(*m, b.input_ids.size(0), b.input_ids.size(1)));
      auto run = [&](bool chunked) {
        for (auto& [_, p] : ad->named_parameters()) p.mutable_grad() = at::Tensor();
        const at::Tensor nll = chunked ? sequence_nll(train::label_logprobs_of(*m, b))
                                       : sequence_nll(train::logits_of(*m, b), b.labels);
        nll.sum().backward();
        std::vector<at::Tensor> out = {nll.detach()};
        for (auto& [_, p] : ad->named_parameters()) out.push_back(p.grad().clone());
        return out;
      };
      const auto plain = run(false), chunked = run(true);
      for (std::size_t i = 0; i < plain.size(); ++i) {
        // Within 1e-5 of the tensor's largest value: OpenBLAS's Haswell kernels sum a chunk's
        // rows in another order than the whole batch's (1.5e-6 at most seen), its AVX-512 ones
        // give the same bits; a misplaced chunk or a wrong target is off by the value itself.
        const double scale = plain[i].abs().max().item<double>();
        EXPECT_CLOSE(i == 0 ? "NLL" : "adapter gradient " + std::to_string(i), chunked[i], plain[i],
                     Tolerance{1e-5 * scale, 0.0});
      }
      torch::NoGradGuard ng;  // the reference's path
      EXPECT_TRUE(sequence_nll(train::label_logprobs_of(*m, b)).equal(plain[0]));
    }
    // A trainable head takes the full logits.
    for (auto& p : m->parameters()) p.set_requires_grad(true);
    EXPECT_FALSE(model::chunked_label_logprobs_applies(*m, 2, 150));
  }
}

TEST(RunConfig, ModelDtypeIsCheckedAtLoad) {
  const fs::path dir = temp_dir("cfg-dtype");
  Json tree = {{"model", {{"path", "m"}, {"dtype", "bfloat16"}}}, {"output_dir", "o"},
               {"data", {{"forget", "f.jsonl"}}}, {"method", {{"name", "NPO"}}}};
  const run::RunConfig c = run::parse_run_config(tree, dir, run::RunKind::kUnlearn);
  EXPECT_EQ(c.model_dtype, at::kBFloat16);
  EXPECT_EQ(c.model, dir / "m");
  auto parse = [&](const Json& t) { run::parse_run_config(t, dir, run::RunKind::kUnlearn); };
  Json t = tree;
  t["model"]["dtype"] = "bf16";
  EXPECT_ERROR_HAS(parse(t), "config: 'model.dtype' must be float32, bfloat16, float16 or float64, got 'bf16'");
  t = tree;
  t["model"].erase("path");
  EXPECT_ERROR_HAS(parse(t), "missing required key 'model.path'");
  t = tree;
  t["model"]["dtpye"] = "float16";
  EXPECT_ERROR_HAS(parse(t), "unknown key 'model.dtpye'");
  t = tree;
  t["data"]["retain"] = "r.jsonl";
  t["lora"] = {{"rank", 4}, {"init", "fila"}};
  EXPECT_ERROR_HAS(parse(t), "fila needs the gradients of the base weights");
  t["model"]["dtype"] = "float32";
  EXPECT_NO_THROW(parse(t));
}

// ---- LoRA -----------------------------------------------------------------------------------------------

TEST(Lora, ZeroBLeavesOutputsAndMergeEqualsUnmerged) {
  for (const std::string& family : model::supported_model_types()) {
    SCOPED_TRACE(family);
    auto m = model::create_model(model::parse_config(model::tiny_config(family), family));
    torch::NoGradGuard ng;
    at::Tensor ids = random_ids(3, 50, {2, 9});
    at::Tensor base = m->forward(ids).logits;
    auto ad = train::LoraAdapter::attach(*m, {4, 8.0, 0.0, "", "default"}, 3);
    EXPECT_TRUE(m->forward(ids).logits.equal(base)) << "B = 0: the model is unchanged";
    for (auto& [name, t] : ad->named_parameters())
      if (name.find("lora_B") != std::string::npos) t.normal_(0.0, 0.5, at::detail::createCPUGenerator(2));
    at::Tensor adapted = m->forward(ids).logits;
    EXPECT_FALSE(adapted.equal(base));
    ad->merge();
    EXPECT_CLOSE("merged vs unmerged", m->forward(ids).logits, adapted, Tolerance{1e-4, 1e-5});
    ad->unmerge();
    EXPECT_CLOSE("unmerged again", m->forward(ids).logits, adapted, Tolerance{1e-4, 1e-5});
    // PEFT files round-trip into a fresh copy of the base model.
    const fs::path dir = temp_dir("peft");
    ad->save(dir, "base");
    io::SafetensorsFile st(dir / "adapter_model.safetensors");
    const std::string first = st.header().tensors.front().name;
    EXPECT_EQ(first.rfind("base_model.model.", 0), 0u) << first;
    auto cfg = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
    // Only PEFT's own LoraConfig keys: peft refuses a config with any other.
    std::set<std::string> keys;
    for (const auto& [k, _] : cfg.items()) keys.insert(k);
    EXPECT_EQ(keys, (std::set<std::string>{"base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode",
                                           "init_lora_weights", "lora_alpha", "lora_dropout", "modules_to_save",
                                           "peft_type", "r", "target_modules", "task_type"}));
    auto notes = nlohmann::json::parse(read_file(dir / "lethe_adapter.json"));
    EXPECT_EQ(notes["init"], "default");
    EXPECT_EQ(notes["base_modified"], false);
    EXPECT_EQ(cfg["peft_type"], "LORA");
    EXPECT_EQ(cfg["r"], 4);
    EXPECT_EQ(cfg["fan_in_fan_out"], family == "gpt2");
    const std::size_t tensors = ad->named_parameters().size();
    ad->detach(false);
    // merge + unmerge leave the base within float rounding of where it was.
    EXPECT_CLOSE("detached without merging", m->forward(ids).logits, base, Tolerance{1e-5, 1e-6});
    auto loaded = train::LoraAdapter::load(*m, dir);
    EXPECT_CLOSE("reloaded adapter", m->forward(ids).logits, adapted, Tolerance{1e-4, 1e-5});
    EXPECT_EQ(loaded->named_parameters().size(), tensors);
  }
}

TEST(Lora, ShapesAndTargets) {
  auto m = tiny_llama();
  auto ad = train::LoraAdapter::attach(*m, {4, 8.0, 0.0, R"(.*\.(q_proj|v_proj))", "default"}, 0);
  EXPECT_EQ(ad->module_names().size(), 4u);  // 2 layers x q, v
  for (const auto& [name, t] : ad->named_parameters()) {
    if (name.find("q_proj.lora_A") != std::string::npos) EXPECT_EQ(t.sizes(), (c10::IntArrayRef{4, 32}));
    if (name.find("v_proj.lora_B") != std::string::npos) EXPECT_EQ(t.sizes(), (c10::IntArrayRef{16, 4}));
  }
  for (auto& p : m->parameters()) EXPECT_FALSE(p.requires_grad()) << "base frozen";
  EXPECT_THROW(train::LoraAdapter::attach(*tiny_llama(), {4, 8.0, 0.0, "nothing_matches", "default"}, 0), Error);
}

TEST(Lora, FilaKeepsTheInitialModel) {
  auto m = tiny_llama();
  std::vector<data::Example> f = {example({1, 5, 6, 7, 8, 2}, 2), example({1, 9, 10, 11, 2}, 2)};
  std::vector<data::Example> r = {example({1, 20, 21, 22, 2}, 2), example({1, 30, 31, 32, 33, 2}, 3)};
  auto batch = [](const std::vector<data::Example>& v) {
    std::vector<const data::Example*> p;
    for (const auto& e : v) p.push_back(&e);
    return data::collate(p, 0);
  };
  at::Tensor ids = random_ids(3, 50, {2, 7});
  at::Tensor before;
  {
    torch::NoGradGuard ng;
    before = m->forward(ids).logits;
  }
  auto ad = train::LoraAdapter::attach(*m, {4, 8.0, 0.0, "", "fila"}, 0);
  ad->fila_init(*m, {batch(f)}, {batch(r)});
  EXPECT_TRUE(ad->base_modified());
  torch::NoGradGuard ng;
  EXPECT_CLOSE("FILA initial model", m->forward(ids).logits, before, Tolerance{1e-5, 0});
  bool nonzero_b = false;
  for (const auto& [name, t] : ad->named_parameters())
    if (name.find("lora_B") != std::string::npos) nonzero_b |= t.abs().sum().item<double>() > 0;
  EXPECT_TRUE(nonzero_b) << "FILA puts the important directions into the adapter";
}

// ---- data ---------------------------------------------------------------------------------------------

TEST(Data, PairingIsDeterministicAndCoversTheRetainSet) {
  const std::size_t nr = 7;
  for (std::uint64_t epoch : {0ULL, 3ULL}) {
    std::vector<int> seen(nr, 0);
    for (std::size_t i = 0; i < nr; ++i) ++seen[data::paired_retain_index(i, nr, 11, epoch)];
    for (int s : seen) EXPECT_EQ(s, 1) << "every retain example once per round";
    EXPECT_EQ(data::paired_retain_index(5, nr, 11, epoch), data::paired_retain_index(5, nr, 11, epoch));
  }
  EXPECT_NE(data::epoch_order(50, 1, 0), data::epoch_order(50, 1, 1));
  EXPECT_EQ(data::epoch_order(50, 1, 2), data::epoch_order(50, 1, 2));
}

TEST(Data, InsertionScheduleSpreadsOrConcentratesEveryCopy) {
  const std::vector<std::int64_t> reps = {1, 3, 8, 40};
  auto copies = [](const std::vector<std::vector<std::size_t>>& s, std::size_t doc) {
    std::vector<int> per(s.size(), 0);
    for (std::size_t e = 0; e < s.size(); ++e) per[e] = static_cast<int>(std::count(s[e].begin(), s[e].end(), doc));
    return per;
  };
  const auto spread = data::insertion_schedule(reps, 8, "spread", 3);
  ASSERT_EQ(spread.size(), 8u);
  for (std::size_t d = 0; d < reps.size(); ++d) {
    const auto per = copies(spread, d);
    EXPECT_EQ(std::accumulate(per.begin(), per.end(), 0), reps[d]) << "document " << d << ": every copy trained";
    // Spread evenly: a document with d copies over 8 epochs has floor or ceil(d / 8) in each;
    // fewer copies than epochs fall in distinct epochs.
    for (int n : per) {
      EXPECT_GE(n, static_cast<int>(reps[d] / 8)) << "document " << d;
      EXPECT_LE(n, static_cast<int>((reps[d] + 7) / 8)) << "document " << d;
    }
  }
  EXPECT_EQ(copies(spread, 3), std::vector<int>(8, 5));
  EXPECT_EQ(spread, data::insertion_schedule(reps, 8, "spread", 3)) << "a pure function of its arguments";
  EXPECT_NE(spread, data::insertion_schedule(reps, 8, "spread", 4)) << "the phase depends on the seed";
  const auto first = data::insertion_schedule(reps, 8, "first", 3), last = data::insertion_schedule(reps, 8, "last", 3);
  for (std::size_t d = 0; d < reps.size(); ++d) {
    EXPECT_EQ(copies(first, d)[0], reps[d]);
    EXPECT_EQ(copies(last, d)[7], reps[d]);
  }
  EXPECT_EQ(first[0].size(), 52u);
  EXPECT_ERROR_HAS(data::insertion_schedule(reps, 8, "middle", 0), "timing must be spread, first or last, got 'middle'");
  EXPECT_ERROR_HAS(data::insertion_schedule({2, 0}, 8, "first", 0), "document 1 has 0 repetitions");
}

TEST(Data, ExamplesAndCollation) {
  MicroWorld w = make_micro_world("data", 6);
  auto tok = text::load_tokenizer(w.model_dir);
  auto idk1 = data::idk_examples(*tok, text::PromptTemplate::named("plain"), w.records, {"No idea.", "I can't say."}, 3, 64);
  auto idk2 = data::idk_examples(*tok, text::PromptTemplate::named("plain"), w.records, {"No idea.", "I can't say."}, 3, 64);
  for (std::size_t i = 0; i < idk1.size(); ++i) EXPECT_EQ(idk1[i].input_ids, idk2[i].input_ids);
  auto comp = data::completion_examples(*tok, {{"The story", " goes on and on."}}, 64);
  ASSERT_EQ(comp.size(), 1u);
  const auto prefix = tok->encode("The story", true);
  for (std::size_t i = 0; i < comp[0].labels.size(); ++i) {
    EXPECT_EQ(comp[0].labels[i] == lethe::kIgnoreIndex, i < prefix.size()) << i;
  }
  auto chunks = data::pretraining_chunks(*tok, {"Lily went home.", "Tom stayed."}, 4);
  std::size_t total = 0;
  for (const auto& c : chunks) total += c.input_ids.size();
  EXPECT_EQ(total, tok->encode("Lily went home.", true).size() + tok->encode("Tom stayed.", true).size() + 2);
  auto qa = data::qa_examples(*tok, text::PromptTemplate::named("plain"), w.records, 64);
  std::vector<const data::Example*> ptrs = {&qa[0], &qa[1]};
  auto right = data::collate(ptrs, 0), left = data::collate(ptrs, 0, data::PaddingSide::kLeft);
  EXPECT_EQ(right.attention_mask.sum().item<std::int64_t>(),
            static_cast<std::int64_t>(qa[0].input_ids.size() + qa[1].input_ids.size()));
  EXPECT_TRUE(right.labels.masked_select(right.attention_mask.eq(0)).eq(lethe::kIgnoreIndex).all().item<bool>());
  EXPECT_TRUE(left.position_ids.masked_select(left.attention_mask.ne(0)).min().item<std::int64_t>() == 0);
}

// ---- configs -------------------------------------------------------------------------------------------

TEST(RunConfig, ErrorsNameTheKeyAndListWhatIsAccepted) {
  const fs::path dir = temp_dir("cfg");
  auto error_of = [&](const std::string& yaml, std::vector<std::string> overrides = {},
                      run::RunKind kind = run::RunKind::kUnlearn) -> std::string {
    write_file_atomic(dir / "c.yaml", yaml);
    try {
      run::load_run_config(dir / "c.yaml", overrides, kind);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string ok = "model: m\noutput_dir: o\ndata: {forget: f.jsonl}\nmethod: {name: NPO}\n";
  EXPECT_EQ(error_of(ok), "");
  EXPECT_NE(error_of(ok, {"train.lrr=1"}).find("unknown key 'train.lrr' (accepted in train: epochs"), std::string::npos);
  EXPECT_NE(error_of(ok, {"method.name=NPOO"}).find("unknown unlearning method 'NPOO'"), std::string::npos);
  EXPECT_NE(error_of(ok, {"method.betta=0.1"}).find("unknown parameter 'betta'"), std::string::npos);
  EXPECT_NE(error_of(ok, {"train.lr=fast"}).find("'train.lr' must be a number"), std::string::npos);
  EXPECT_NE(error_of(ok, {"train.schedule=exp"}).find("must be one of constant, constant_with_warmup, linear, cosine"),
            std::string::npos);
  EXPECT_NE(error_of("output_dir: o\n").find("missing required key 'model'"), std::string::npos);
  EXPECT_NE(error_of(ok, {"lora.init=svd"}).find("'lora.init' must be default or fila"), std::string::npos);
  EXPECT_NE(error_of("model: m\noutput_dir: o\ndata: {train: t.jsonl}\nmethod: {name: NPO}\n", {},
                     run::RunKind::kFinetune)
                .find("'method' belongs to unlearn configs"),
            std::string::npos);
  EXPECT_NE(error_of("model: [unclosed\n").find("not valid YAML"), std::string::npos);
  auto c = [&] {
    write_file_atomic(dir / "c.yaml", ok);
    return run::load_run_config(dir / "c.yaml", {"train.lr=2.5e-4", "method.beta=0.3", "lora.rank=8"},
                                  run::RunKind::kUnlearn);
  }();
  EXPECT_DOUBLE_EQ(c.train.optimizer.lr, 2.5e-4);
  EXPECT_DOUBLE_EQ(std::get<double>(c.method_params.at("beta")), 0.3);
  EXPECT_TRUE(c.lora);
  EXPECT_EQ(c.lora_config.rank, 8);
  EXPECT_EQ(c.model, dir / "m");
}

// YAML aliases make a document a graph (found by fuzz.run_config: an anchor inside itself
// recursed until the stack overflowed): a self-containing alias and an exponential expansion
// are each one error naming the file.
TEST(RunConfig, AliasesThatNeverEndAreOneError) {
  const fs::path dir = temp_dir("cfg-alias");
  auto error_of = [&](const std::string& yaml) -> std::string {
    write_file_atomic(dir / "c.yaml", yaml);
    try {
      run::load_run_config(dir / "c.yaml", {}, run::RunKind::kUnlearn);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string ok = "model: m\noutput_dir: o\ndata: {forget: f.jsonl}\nmethod: {name: NPO}\n";
  // An alias used as one (the same file twice) is fine.
  EXPECT_EQ(error_of("model: m\noutput_dir: o\ndata: {forget: &f f.jsonl, retain: *f}\nmethod: {name: NPO}\n"), "");
  const std::string self = error_of("base: &b {x: *b}\n" + ok);
  EXPECT_NE(self.find("c.yaml"), std::string::npos) << self;
  EXPECT_NE(self.find("nested deeper than 64 levels"), std::string::npos) << self;
  std::string laughs = "l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i < 7; ++i) {
    const std::string prev = "*l" + std::to_string(i - 1);
    laughs += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) laughs += (k ? ", " : "") + prev;
    laughs += "]\n";
  }
  const std::string big = error_of(laughs + ok);
  EXPECT_NE(big.find("more than 1000000 values once aliases are expanded"), std::string::npos) << big;
}

// A program that builds its run config (the demo) runs the tree it writes out as YAML: the file
// read back is the same run.
TEST(RunConfig, ATreeAndItsYamlAreTheSameRun) {
  const fs::path dir = temp_dir("cfg-tree");
  const Json tree = {{"model", "m"}, {"output_dir", "o"}, {"seed", 7}, {"from_scratch", true},
                     {"data", {{"train", "t.jsonl"}, {"max_length", 128}}},
                     {"train", {{"epochs", 24}, {"lr", 3.0e-3}, {"warmup_ratio", 0.05}, {"schedule", "cosine"},
                                {"progress", false}}}};
  write_file_atomic(dir / "c.yaml", tree.dump(2) + "\n");
  const auto a = run::parse_run_config(tree, dir, run::RunKind::kFinetune);
  const auto b = run::load_run_config(dir / "c.yaml", {}, run::RunKind::kFinetune);
  EXPECT_EQ(a.resolved_json, b.resolved_json);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.output_dir, dir / "o");
  EXPECT_EQ(a.data.train, b.data.train);
  EXPECT_EQ(a.seed, 7u);
  EXPECT_EQ(a.train.optimizer.lr, b.train.optimizer.lr);
  EXPECT_EQ(a.train.warmup_ratio, b.train.warmup_ratio);
  EXPECT_EQ(a.train.epochs, b.train.epochs);
  EXPECT_FALSE(a.eval.has_value());
}

// The eval: section is typed options, parsed and checked with the rest of the config.
TEST(RunConfig, GradientCheckpointingIsCheckedAtLoad) {
  const fs::path dir = temp_dir("cfg-ckpt");
  Json tree = {{"model", "m"}, {"output_dir", "o"}, {"data", {{"forget", "f.jsonl"}}}, {"method", {{"name", "NPO"}}},
               {"train", {{"gradient_checkpointing", true}}}};
  EXPECT_TRUE(run::parse_run_config(tree, dir, run::RunKind::kUnlearn).train.gradient_checkpointing);
  auto error_of = [&](const Json& t) -> std::string {
    try {
      run::parse_run_config(t, dir, run::RunKind::kUnlearn);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  Json t = tree;
  t["method"] = {{"name", "RMU"}};
  EXPECT_NE(error_of(t).find("cannot be used with method RMU"), std::string::npos) << error_of(t);
  t = tree;
  t["lora"] = {{"rank", 4}, {"dropout", 0.1}};
  EXPECT_NE(error_of(t).find("needs lora.dropout 0"), std::string::npos) << error_of(t);
  t["lora"]["dropout"] = 0.0;
  EXPECT_EQ(error_of(t), "");
}

TEST(RunConfig, ChatTemplatesComeFromTheTokenizerFolder) {
  const fs::path dir = temp_dir("cfg-chat");
  fs::create_directories(dir / "m");
  Json tree = {{"model", "m"}, {"output_dir", "o"}, {"data", {{"forget", "f.jsonl"}, {"template", "chat"}}},
               {"method", {{"name", "NPO"}}}};
  auto error_of = [&](const Json& t) -> std::string {
    try {
      run::parse_run_config(t, dir, run::RunKind::kUnlearn);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of(tree).find((dir / "m").string() + " has no chat template"), std::string::npos) << error_of(tree);
  Json t = tree;
  t["data"]["template"] = "auto";
  EXPECT_EQ(run::parse_run_config(t, dir, run::RunKind::kUnlearn).data.prompt_template.name, "plain");
  write_file_atomic(dir / "m" / "tokenizer_config.json",
                    R"({"bos_token": "<s>", "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}"})");
  for (const Json& v : {Json("chat"), Json("auto"), Json{{"name", "chat"}, {"system", "Be brief."}}}) {
    t["data"]["template"] = v;
    const auto c = run::parse_run_config(t, dir, run::RunKind::kUnlearn);
    ASSERT_NE(c.data.prompt_template.chat, nullptr) << v;
    EXPECT_EQ(text::format_prompt(c.data.prompt_template, {}, "q"), v.is_object() ? "<s>system:Be brief.;user:q;" : "<s>user:q;");
  }
  // A template outside the subset fails when the config is read, naming the file and the line.
  write_file_atomic(dir / "m" / "tokenizer_config.json", R"({"chat_template": "a\n{% include 'x' %}"})");
  EXPECT_NE(error_of(tree).find("tokenizer_config.json: chat_template:2: the 'include' statement is not supported"), std::string::npos)
      << error_of(tree);
  t["data"]["template"] = Json{{"name", "plain"}, {"user_start", "Q"}};
  EXPECT_NE(error_of(t).find("user_start"), std::string::npos) << error_of(t);
}

TEST(RunConfig, EvalSectionIsTypedAndCheckedAtLoad) {
  const fs::path dir = temp_dir("cfg-eval");
  fs::create_directories(dir / "tofu");
  for (const char* f : {"forget10_perturbed.jsonl", "retain_perturbed.jsonl", "real_authors_perturbed.jsonl",
                        "world_facts_perturbed.jsonl", "holdout10.jsonl"}) {
    write_file_atomic(dir / "tofu" / f, "");
  }
  Json tree = {{"model", "m"}, {"output_dir", "o"}, {"data", {{"forget", "f.jsonl"}, {"template", "llama3-chat"}}},
               {"method", {{"name", "NPO"}}},
               {"eval", {{"data", "tofu"}, {"every", 5}, {"max_items", 3}, {"metrics", Json::array({"probability", "mia_loss"})}}}};
  const auto c = run::parse_run_config(tree, dir, run::RunKind::kUnlearn);
  ASSERT_TRUE(c.eval.has_value());
  EXPECT_EQ(c.eval->suite, "tofu");
  EXPECT_EQ(c.eval->data, dir / "tofu");
  EXPECT_EQ(c.eval->out, dir / "o" / "eval");
  EXPECT_EQ(c.eval->max_items, 3);
  EXPECT_EQ(c.eval->metrics, (std::vector<std::string>{"probability", "mia_loss"}));
  EXPECT_EQ(c.eval->prompt_template.name, "llama3-chat");  // the run's template
  EXPECT_EQ(c.eval_every, 5);
  auto error_of = [&](const char* key, const Json& value) -> std::string {
    Json t = tree;
    t["eval"][key] = value;
    try {
      run::parse_run_config(t, dir, run::RunKind::kUnlearn);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of("metrics", Json::array({"bleu"})).find("unknown metric 'bleu'"), std::string::npos);
  EXPECT_NE(error_of("suite", "wmdp").find("'eval.suite' must be one of tofu, muse"), std::string::npos);
  EXPECT_NE(error_of("metrics", Json::array({"forget_quality"})).find("needs a reference"), std::string::npos);
  EXPECT_NE(error_of("data", "nowhere").find("no such data folder"), std::string::npos);
  EXPECT_NE(error_of("evry", 2).find("unknown key 'eval.evry'"), std::string::npos);
}

}  // namespace
}  // namespace lethe::test

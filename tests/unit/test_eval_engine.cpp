// The evaluation engine on a golden model: scoring extras (distribution statistics, argmax
// matches) against a direct log_softmax, and per-item gradient norms against a hand-run
// backward pass, with the model left exactly as it was.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lethe/eval/engine.h"
#include "lethe/model/load.h"
#include "lethe/model/score.h"
#include "support/fixtures.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;

std::shared_ptr<model::CausalLM> golden_llama() {
  return model::load_model(golden_dir() / "llama_gqa_untied" / "model");
}

std::vector<data::Example> examples(std::int64_t vocab) {
  std::vector<data::Example> ex;
  at::Generator g = at::detail::createCPUGenerator(11);
  for (int len : {9, 14, 6}) {
    at::Tensor ids = at::randint(3, vocab, {len}, g, at::kLong);
    data::Example e;
    e.input_ids.assign(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + len);
    e.labels = e.input_ids;
    for (int i = 0; i < 3; ++i) e.labels[static_cast<std::size_t>(i)] = lethe::kIgnoreIndex;  // a "prompt"
    ex.push_back(e);
  }
  return ex;
}

TEST(EvalEngine, ScoreExtrasMatchADirectLogSoftmax) {
  LETHE_NEED_FIXTURE(golden_dir() / "llama_gqa_untied" / "model");
  auto m = golden_llama();
  const auto ex = examples(m->config().vocab_size);
  eval::EngineOptions opt;
  opt.batch_size = 2;  // two batches, padded
  opt.progress = false;
  const auto scores = eval::score_examples(*m, ex, 0, true, opt, "test");
  ASSERT_EQ(scores.size(), ex.size());
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < ex.size(); ++i) {
    const auto n = static_cast<std::int64_t>(ex[i].input_ids.size());
    at::Tensor ids = at::tensor(ex[i].input_ids, at::kLong).view({1, n});
    at::Tensor logp = at::log_softmax(m->forward(ids, {}).logits[0].to(at::kDouble), -1);  // (T, V)
    ASSERT_EQ(scores[i].size(), static_cast<std::size_t>(n - 3));
    for (std::int64_t t = 2; t < n - 1; ++t) {
      const std::size_t k = static_cast<std::size_t>(t - 2);
      const std::int64_t y = ex[i].input_ids[static_cast<std::size_t>(t + 1)];
      at::Tensor row = logp[t];
      const double mu = (row.exp() * row).sum().item<double>();
      const double sd = std::sqrt((row.exp() * row * row).sum().item<double>() - mu * mu);
      EXPECT_NEAR(scores[i].logprobs[k], row[y].item<double>(), 2e-5);
      EXPECT_NEAR(scores[i].mean_logprob[k], mu, 2e-5);
      EXPECT_NEAR(scores[i].std_logprob[k], sd, 2e-5);
      EXPECT_EQ(scores[i].argmax_hit[k] != 0, row.argmax().item<std::int64_t>() == y);
    }
  }
}

TEST(EvalEngine, GradientNormsLeaveTheModelUntouched) {
  LETHE_NEED_FIXTURE(golden_dir() / "llama_gqa_untied" / "model");
  auto m = golden_llama();
  const auto ex = examples(m->config().vocab_size);
  m->train();
  auto params = m->parameters();
  params[0].set_requires_grad(false);  // a frozen parameter stays frozen
  std::vector<at::Tensor> before;
  for (auto& p : params) before.push_back(p.detach().clone());
  eval::EngineOptions opt;
  opt.progress = false;
  const auto norms = eval::gradient_norms(*m, ex, 0, opt, "test");
  ASSERT_EQ(norms.size(), ex.size());
  EXPECT_TRUE(m->is_training());
  EXPECT_FALSE(params[0].requires_grad());
  for (std::size_t k = 0; k < params.size(); ++k) {
    EXPECT_FALSE(params[k].grad().defined()) << k;
    EXPECT_TRUE(params[k].equal(before[k])) << k;
    if (k > 0) EXPECT_TRUE(params[k].requires_grad());
  }
  // The first item by hand: mean NLL over its label tokens, backward, global L2 norm (every
  // parameter, the frozen one included).
  for (auto& p : params) p.set_requires_grad(true);
  m->eval();
  const auto n = static_cast<std::int64_t>(ex[0].input_ids.size());
  at::Tensor ids = at::tensor(ex[0].input_ids, at::kLong).view({1, n});
  at::Tensor labels = at::tensor(ex[0].labels, at::kLong).view({1, n});
  at::Tensor logits = m->forward(ids, {}).logits;
  model::causal_lm_loss(logits, labels).backward();
  double sq = 0;
  for (auto& p : params) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  EXPECT_NEAR(norms[0], std::sqrt(sq), 1e-5 * std::sqrt(sq));
}

}  // namespace
}  // namespace lethe::test

// The runtime's self-consistency on random models of every family (no fixtures needed):
// KV cache vs full recompute, batched vs one-at-a-time, 1 vs 2 threads, hooks, the chunked
// scorer vs a naive log_softmax, sampling controls and stop conditions.
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/function.h>

#include <cmath>
#include <limits>
#include <set>

#include "lethe/core/error.h"
#include "lethe/core/runtime.h"
#include "lethe/model/generate.h"
#include "lethe/model/load.h"
#include "lethe/model/score.h"
#include "lethe/model/blocks.h"
#include "lethe/train/lora.h"
#include "model/blocks/decode_kernels.h"
#include "model/blocks/half_weights.h"
#include "support/compare.h"
#include "support/errors.h"
#include "support/fixtures.h"

namespace lethe::test {
namespace {
using model::CausalLM;

// The family's own tiny config (ArchSpec::tiny_config), with `vocab` tokens.
std::shared_ptr<CausalLM> tiny(const std::string& type, std::int64_t vocab = 97) {
  nlohmann::json j = nlohmann::json::parse(model::tiny_config(type));
  j["vocab_size"] = vocab;
  const std::string json = j.dump();
  auto m = model::create_model(model::parse_config(json, type + ".json"), {}, /*seed=*/11);
  // HF-style init (std 0.02) gives near-uniform logits; scale up so tests see real structure.
  torch::NoGradGuard ng;
  for (auto& p : m->parameters())
    if (p.dim() > 1) p.mul_(20.0);
  return m;
}

class EveryFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFamily, KvCacheEqualsFullRecompute) {
  auto m = tiny(GetParam());
  torch::NoGradGuard ng;
  at::Tensor ids = random_ids(3, 97, {2, 12});
  at::Tensor full = m->forward(ids).logits;  // (2, 12, V)
  model::KVCache cache(m->config().num_layers, 4);  // too small on purpose: must grow
  model::ForwardOptions fo;
  fo.cache = &cache;
  std::vector<at::Tensor> parts;
  parts.push_back(m->forward(ids.narrow(1, 0, 5), fo).logits);
  for (std::int64_t t = 5; t < 12; ++t) parts.push_back(m->forward(ids.narrow(1, t, 1), fo).logits);
  EXPECT_EQ(cache.length(), 12);
  EXPECT_CLOSE("cached logits", at::cat(parts, 1), full, tol::kSelf);
}

TEST_P(EveryFamily, BatchEqualsOneAtATime) {
  auto m = tiny(GetParam());
  std::vector<std::vector<std::int64_t>> prompts = {{5, 6, 7, 8, 9, 10}, {11, 12}, {13, 14, 15}};
  model::GenerateOptions o;
  o.max_new_tokens = 8;
  o.stop_at_eos = false;
  o.keep_step_logits = true;
  auto batch = model::generate(*m, prompts, o);
  std::vector<std::vector<std::int64_t>> seqs;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    auto one = model::generate(*m, std::vector<std::vector<std::int64_t>>{prompts[i]}, o);
    EXPECT_EQ(batch.tokens[i], one.tokens[0]) << "prompt " << i;
    EXPECT_CLOSE("step logits " + std::to_string(i), batch.step_logits.select(0, i),
                 one.step_logits.select(0, 0), tol::kSelf);
    auto s = prompts[i];
    s.insert(s.end(), one.tokens[0].begin(), one.tokens[0].end());
    seqs.push_back(s);
  }
  // Scoring: padded batches equal single sequences.
  auto batched = model::score_sequences(*m, seqs, 3);
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    auto single = model::score_sequences(*m, {seqs[i]}, 1);
    ASSERT_EQ(batched[i].size(), seqs[i].size() - 1);
    EXPECT_CLOSE("scores " + std::to_string(i), at::tensor(batched[i]), at::tensor(single[0]),
                 tol::kSelf);
  }
}

// mlp_value_vectors is what the MLP writes: replacing mlp_act.L at position t by the unit vector
// e_t (and at a last position by 0) makes mlp_out.L at t minus at the last the family's column t,
// up to a positive scale (Gemma-2 normalises the MLP's output; every other family exactly).
TEST_P(EveryFamily, MlpValueVectorsAreWhatTheMlpWrites) {
  auto m = tiny(GetParam());
  torch::NoGradGuard ng;
  const std::int64_t width = m->config().intermediate_size;
  for (std::int64_t layer = 0; layer < m->config().num_layers; ++layer) {
    at::Tensor written;
    model::HookFunction obs([&](const model::HookPoint& p, at::Tensor& x) {
      if (p.layer != layer) return;
      if (p.site == model::HookSite::kMlpAct) {
        ASSERT_EQ(x.size(-1), width);
        at::Tensor units = at::zeros_like(x);
        units[0].narrow(0, 0, width).copy_(at::eye(width, x.options()));
        x = units;
      } else if (p.site == model::HookSite::kMlpOut) {
        written = (x[0].narrow(0, 0, width) - x[0][width]).t();  // (C, I)
      }
    });
    model::ForwardOptions fo;
    fo.hooks = &obs;
    m->forward(random_ids(5, 97, {1, width + 1}), fo);
    const at::Tensor v = model::mlp_value_vectors(*m, layer);
    ASSERT_EQ(v.sizes(), written.sizes()) << "layer " << layer;
    const at::Tensor scale = (written * v).sum(0) / v.pow(2).sum(0);
    EXPECT_GT(scale.min().item<double>(), 0) << "layer " << layer;
    EXPECT_CLOSE("value vectors, scaled", written.to(at::kFloat), v * scale, tol::kSelf);
    if (GetParam() != "gemma2") EXPECT_CLOSE("value vectors", written.to(at::kFloat), v, tol::kSelf);
  }
  EXPECT_ERROR_HAS(model::mlp_value_vectors(*m, m->config().num_layers), "layer");
}

TEST_P(EveryFamily, ThreadCountDoesNotChangeResults) {
  auto m = tiny(GetParam());
  torch::NoGradGuard ng;
  at::Tensor ids = random_ids(3, 97, {4, 40});
  const int before = threads();
  set_threads(1);
  at::Tensor one = m->forward(ids).logits;
  set_threads(2);
  at::Tensor two = m->forward(ids).logits;
  set_threads(before);
  EXPECT_CLOSE("1 vs 2 threads", two, one, tol::kSelf);
}

TEST_P(EveryFamily, ScorerMatchesNaiveLogSoftmax) {
  // A vocabulary big enough that the scorer projects in several chunks.
  auto m = tiny(GetParam(), /*vocab=*/40000);
  at::Tensor ids = random_ids(3, 40000, {3, 150});
  at::Tensor mask = at::ones({3, 150}, at::kLong);
  mask[1].narrow(0, 100, 50).zero_();  // right padding
  at::Tensor labels = ids.clone();
  labels[2].narrow(0, 0, 60).fill_(lethe::kIgnoreIndex);  // score only a suffix
  auto got = model::score_tokens(*m, ids, mask, labels);

  torch::NoGradGuard ng;
  model::ForwardOptions fo;
  fo.attention_mask = mask;
  fo.position_ids = model::positions_from_mask(mask);
  at::Tensor logp = at::log_softmax(m->forward(ids, fo).logits, -1);
  at::Tensor want = logp.narrow(1, 0, 149).gather(-1, ids.narrow(1, 1, 149).unsqueeze(-1)).squeeze(-1);
  at::Tensor keep = labels.narrow(1, 1, 149).ne(lethe::kIgnoreIndex)
                        .logical_and(mask.narrow(1, 1, 149).ne(0));
  want = want.masked_fill(keep.logical_not(), 0.0);
  EXPECT_TRUE(got.mask.equal(keep));
  EXPECT_CLOSE("chunked scorer", got.logprobs, want, tol::kSelf);
}

// Gradient checkpointing recomputes each block in backward: the gradients are the plain ones,
// bit for bit (the same operations run in the same order), with a padded batch and the loss.
TEST_P(EveryFamily, CheckpointedGradientsEqualPlain) {
  auto m = tiny(GetParam());
  m->train();
  at::Tensor ids = random_ids(3, 97, {2, 10});
  at::Tensor mask = at::ones({2, 10}, at::kLong);
  mask[1].narrow(0, 0, 3).zero_();  // left padding
  model::ForwardOptions fo;
  fo.attention_mask = mask;
  fo.position_ids = model::positions_from_mask(mask);
  auto grads = [&](bool checkpoint) {
    m->set_gradient_checkpointing(checkpoint);
    m->zero_grad();
    model::causal_lm_loss(m->forward(ids, fo).logits, ids.masked_fill(mask.eq(0), lethe::kIgnoreIndex)).backward();
    std::vector<at::Tensor> g;
    for (const auto& p : m->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  // The graph really holds one recomputing node per block (and none without the setting).
  auto recomputing_nodes = [&](bool checkpoint) {
    m->set_gradient_checkpointing(checkpoint);
    const at::Tensor out = m->forward(ids, fo).logits;
    std::vector<torch::autograd::Node*> pending = {out.grad_fn().get()};
    std::set<torch::autograd::Node*> seen;
    int n = 0;
    while (!pending.empty()) {
      torch::autograd::Node* node = pending.back();
      pending.pop_back();
      if (node == nullptr || !seen.insert(node).second) continue;
      if (node->name().find("CheckpointedBlock") != std::string::npos) ++n;
      for (const auto& e : node->next_edges()) pending.push_back(e.function.get());
    }
    return n;
  };
  EXPECT_EQ(recomputing_nodes(false), 0);
  EXPECT_EQ(recomputing_nodes(true), m->config().num_layers);
  const auto plain = grads(false);
  const auto ckpt = grads(true);
  ASSERT_EQ(plain.size(), ckpt.size());
  for (std::size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(plain[i].equal(ckpt[i])) << "parameter " << i;
  // Frozen embeddings (as under LoRA): the blocks' parameters still get their gradients.
  for (auto& item : m->named_parameters()) {
    if (item.key().find("emb") != std::string::npos || item.key().find("wte") != std::string::npos) {
      item.value().set_requires_grad(false);
    }
  }
  auto frozen_grads = [&](bool checkpoint) {
    m->set_gradient_checkpointing(checkpoint);
    for (auto& p : m->parameters()) p.mutable_grad() = at::Tensor();
    model::causal_lm_loss(m->forward(ids, fo).logits, ids.masked_fill(mask.eq(0), lethe::kIgnoreIndex)).backward();
    std::vector<at::Tensor> g;
    for (const auto& p : m->parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
    return g;
  };
  const auto frozen_plain = frozen_grads(false), frozen_ckpt = frozen_grads(true);
  std::size_t with_grad = 0;
  for (std::size_t i = 0; i < frozen_plain.size(); ++i) {
    ASSERT_EQ(frozen_plain[i].defined(), frozen_ckpt[i].defined()) << "parameter " << i;
    if (!frozen_plain[i].defined()) continue;
    ++with_grad;
    EXPECT_TRUE(frozen_plain[i].equal(frozen_ckpt[i])) << "parameter " << i << " with frozen embeddings";
  }
  EXPECT_GT(with_grad, 0u);
  EXPECT_LT(with_grad, frozen_plain.size()) << "the embedding was frozen";
  for (auto& p : m->parameters()) p.set_requires_grad(true);
  // Without grad mode (scoring, generation) nothing is recomputed; with an observer it refuses.
  {
    torch::NoGradGuard ng;
    EXPECT_TRUE(m->forward(ids).logits.defined());
  }
  model::HookFunction obs([](const model::HookPoint&, at::Tensor&) {});
  model::ForwardOptions with_hooks;
  with_hooks.hooks = &obs;
  EXPECT_THROW(m->forward(ids, with_hooks), Error);
  m->set_gradient_checkpointing(false);
}

// Half-size weights: a model stored in bf16 or f16 computes what the fp32 model holding the
// same (rounded) values computes — logits, scores and greedy decoding (the one-row kernels) bit
// for bit — and passes the same input gradients through its frozen weights to LoRA adapters.
TEST_P(EveryFamily, HalfStoredComputesAsFloatOfTheSameValues) {
  for (const auto dt : {at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(c10::toString(dt));
    auto f = tiny(GetParam());
    {
      torch::NoGradGuard ng;
      for (auto& p : f->parameters()) p.copy_(p.to(dt).to(at::kFloat));
    }
    auto h = model::clone_model(*f, dt);
    EXPECT_EQ(h->storage_dtype(), dt);
    EXPECT_EQ(h->compute_dtype(), at::kFloat);
    for (const auto& p : h->parameters()) ASSERT_EQ(p.scalar_type(), dt);
    at::Tensor ids = random_ids(3, 97, {2, 10});
    at::Tensor mask = at::ones({2, 10}, at::kLong);
    mask[1].narrow(0, 0, 3).zero_();
    {
      torch::NoGradGuard ng;
      model::ForwardOptions fo;
      fo.attention_mask = mask;
      fo.position_ids = model::positions_from_mask(mask);
      const at::Tensor lf = f->forward(ids, fo).logits, lh = h->forward(ids, fo).logits;
      EXPECT_EQ(lh.scalar_type(), at::kFloat);
      EXPECT_TRUE(lf.equal(lh)) << "logits, max diff " << (lf - lh).abs().max().item<double>();
      EXPECT_TRUE(model::score_tokens(*f, ids, mask).logprobs.equal(model::score_tokens(*h, ids, mask).logprobs));
      model::GenerateOptions go;
      go.max_new_tokens = 6;
      go.stop_at_eos = false;
      const std::vector<std::vector<std::int64_t>> prompts = {{5, 6, 7}, {9, 10, 11, 12, 13}};
      EXPECT_EQ(model::generate(*f, prompts, go).tokens, model::generate(*h, prompts, go).tokens);
    }
    // LoRA over the frozen half base: the adapters' gradients come through the half weights.
    auto grads = [&](model::CausalLM& m) {
      auto ad = train::LoraAdapter::attach(m, {2, 4.0, 0.0, "", "default"}, 5);
      {
        torch::NoGradGuard ng;
        for (auto& [name, t] : ad->named_parameters())
          if (name.find("lora_B") != std::string::npos) t.normal_(0.0, 0.3, at::detail::createCPUGenerator(7));
      }
      m.train();
      model::causal_lm_loss(m.forward(ids).logits, ids).backward();
      m.eval();
      std::vector<at::Tensor> g;
      for (auto& [name, t] : ad->named_parameters()) {
        EXPECT_EQ(t.scalar_type(), at::kFloat) << name << ": adapters are trainable, so fp32";
        g.push_back(t.grad().clone());
      }
      for (const auto& p : m.parameters()) EXPECT_FALSE(p.grad().defined());
      ad->detach(false);
      return g;
    };
    const auto gf = grads(*f), gh = grads(*h);
    ASSERT_EQ(gf.size(), gh.size());
    for (std::size_t i = 0; i < gf.size(); ++i) EXPECT_CLOSE("adapter gradient", gh[i], gf[i], tol::kSelf);
    // A trainable half weight is refused, naming its dtype.
    h->parameters()[1].set_requires_grad(true);
    EXPECT_ERROR_HAS(h->forward(ids), "half-precision weights are for frozen parameters");
  }
}

// Every model_type of the registry: a new family is tested here without editing a list.
INSTANTIATE_TEST_SUITE_P(Families, EveryFamily, ::testing::ValuesIn(model::supported_model_types()));

TEST(Hooks, EverySiteFiresOnceInOrderWithItsShape) {
  auto m = tiny("llama");
  std::vector<std::string> seen;
  model::HookFunction obs([&](const model::HookPoint& p, at::Tensor& x) {
    seen.push_back(p.name() + ":" + std::to_string(x.size(-1)));
  });
  torch::NoGradGuard ng;
  model::ForwardOptions fo;
  fo.hooks = &obs;
  m->forward(at::ones({1, 3}, at::kLong), fo);
  std::vector<std::string> want = {"embed:32",      "attn_out.0:32", "mlp_act.0:40",
                                   "mlp_out.0:32",  "resid_post.0:32", "attn_out.1:32",
                                   "mlp_act.1:40",  "mlp_out.1:32",  "resid_post.1:32",
                                   "final_norm:32"};
  EXPECT_EQ(seen, want);
}

TEST(Hooks, ReplacementChangesTheOutputAndReadingDoesNot) {
  auto m = tiny("gpt_neox");
  torch::NoGradGuard ng;
  at::Tensor ids = random_ids(3, 97, {2, 7});
  at::Tensor base = m->forward(ids).logits;
  model::HookFunction reader([](const model::HookPoint&, at::Tensor& x) { (void)x.sum(); });
  model::ForwardOptions fo;
  fo.hooks = &reader;
  EXPECT_TRUE(m->forward(ids, fo).logits.equal(base));

  // Zeroing every MLP output equals a model whose MLP output projections are zero.
  model::HookFunction zero_mlp([](const model::HookPoint& p, at::Tensor& x) {
    if (p.site == model::HookSite::kMlpOut) x = at::zeros_like(x);
  });
  fo.hooks = &zero_mlp;
  at::Tensor hooked = m->forward(ids, fo).logits;
  EXPECT_FALSE(hooked.equal(base));
  for (auto& item : m->named_parameters()) {
    if (item.key().find("dense_4h_to_h") != std::string::npos) item.value().zero_();
  }
  EXPECT_CLOSE("zeroed MLP via hook vs via weights", hooked, m->forward(ids).logits, tol::kSelf);
}

TEST(Hooks, PointNamesParse) {
  for (const char* name : {"embed", "attn_out.0", "mlp_act.12", "mlp_out.3", "resid_post.7",
                           "final_norm"}) {
    auto p = model::HookPoint::parse(name);
    ASSERT_TRUE(p.has_value()) << name;
    EXPECT_EQ(p->name(), name);
  }
  for (const char* bad : {"", "embed.1", "attn_out", "attn_out.", "attn_out.x", "mlp.1"}) {
    EXPECT_FALSE(model::HookPoint::parse(bad).has_value()) << bad;
  }
}

TEST(Generate, SamplingIsSeededAndTopK1IsGreedy) {
  auto m = tiny("llama");
  std::vector<std::vector<std::int64_t>> p = {{5, 6, 7}};
  model::GenerateOptions o;
  o.max_new_tokens = 12;
  o.stop_at_eos = false;
  auto greedy = model::generate(*m, p, o);
  o.temperature = 1.0;
  o.seed = 42;
  auto a = model::generate(*m, p, o);
  auto b = model::generate(*m, p, o);
  EXPECT_EQ(a.tokens, b.tokens) << "same seed, same tokens";
  o.seed = 43;
  auto c = model::generate(*m, p, o);
  o.seed = 44;
  auto d = model::generate(*m, p, o);
  EXPECT_FALSE(a.tokens == c.tokens && a.tokens == d.tokens) << "seeds should matter";
  o.top_k = 1;
  EXPECT_EQ(model::generate(*m, p, o).tokens, greedy.tokens);
  o.top_k = 0;
  o.top_p = 1e-6;  // the nucleus is the single most likely token
  EXPECT_EQ(model::generate(*m, p, o).tokens, greedy.tokens);
}

TEST(Generate, StopConditions) {
  auto m = tiny("gpt2");
  std::vector<std::vector<std::int64_t>> p = {{5, 6, 7}};
  model::GenerateOptions o;
  o.max_new_tokens = 10;
  o.stop_at_eos = false;
  auto free_run = model::generate(*m, p, o).tokens[0];
  ASSERT_EQ(free_run.size(), 10u);

  // EOS: the first occurrence of the chosen id stops the row and is not included.
  o.stop_at_eos = true;
  o.eos_token_ids = {free_run[3]};
  auto r = model::generate(*m, p, o);
  const auto first = std::find(free_run.begin(), free_run.end(), free_run[3]) - free_run.begin();
  EXPECT_EQ(r.tokens[0], std::vector<std::int64_t>(free_run.begin(), free_run.begin() + first));
  EXPECT_EQ(r.stop_reasons[0], model::StopReason::kEos);

  // Stop sequence: kept in the output.
  o.eos_token_ids = {};
  o.stop_at_eos = false;
  o.stop_sequences = {{free_run[4], free_run[5]}};
  r = model::generate(*m, p, o);
  EXPECT_EQ(r.stop_reasons[0], model::StopReason::kStopSequence);
  EXPECT_LE(r.tokens[0].size(), 6u);
  EXPECT_EQ(r.tokens[0], std::vector<std::int64_t>(free_run.begin(), free_run.begin() + r.tokens[0].size()));

  // Stop string through a detokenizer (here: one letter per id).
  o.stop_sequences.clear();
  o.detokenize = [](const std::vector<std::int64_t>& ids) {
    std::string s;
    for (auto id : ids) s += static_cast<char>('a' + id % 26);
    return s;
  };
  o.stop_strings = {std::string(1, static_cast<char>('a' + free_run[2] % 26))};
  r = model::generate(*m, p, o);
  EXPECT_EQ(r.stop_reasons[0], model::StopReason::kStopString);
  EXPECT_LE(r.tokens[0].size(), 3u);

  o.detokenize = nullptr;
  EXPECT_THROW(model::generate(*m, p, o), Error);
}

TEST(Generate, RejectsBadInput) {
  auto m = tiny("gpt2");
  model::GenerateOptions o;
  EXPECT_THROW(model::generate(*m, std::vector<std::vector<std::int64_t>>{{}}, o), Error);
  EXPECT_THROW(model::generate(*m, std::vector<std::vector<std::int64_t>>{{1, 200}}, o), Error);
  at::Tensor right_padded = at::tensor({5, 6, 0}, at::kLong).unsqueeze(0);
  at::Tensor mask = at::tensor({1, 1, 0}, at::kLong).unsqueeze(0);
  EXPECT_THROW(model::generate(*m, right_padded, mask, o), Error);
  o.max_new_tokens = 300;  // 3 + 300 > 256 learned positions
  EXPECT_THROW(model::generate(*m, std::vector<std::vector<std::int64_t>>{{1, 2, 3}}, o), Error);
  o.max_new_tokens = 4;
  o.top_p = 0.0;
  EXPECT_THROW(model::generate(*m, std::vector<std::vector<std::int64_t>>{{1}}, o), Error);
}

TEST(Model, InitIsSeededAndGradientsFlow) {
  auto cfg = tiny("qwen2")->config();
  auto a = model::create_model(cfg, {}, 3), b = model::create_model(cfg, {}, 3);
  auto c = model::create_model(cfg, {}, 4);
  auto pa = a->named_parameters(), pb = b->named_parameters(), pc = c->named_parameters();
  bool any_diff = false;
  for (const auto& item : pa) {
    EXPECT_TRUE(item.value().equal(pb[item.key()])) << item.key();
    any_diff |= !item.value().equal(pc[item.key()]);
  }
  EXPECT_TRUE(any_diff);
  // embed + 2 x (q with bias, k and v with bias, o, gate/up/down, 2 norms) + norm + untied head
  EXPECT_EQ(a->parameter_count(), 97 * 32 + 2 * (32 * 32 + 32 + 2 * (16 * 32 + 16) + 32 * 32 +
                                                  3 * 32 * 40 + 2 * 32) + 32 + 97 * 32);
  a->train();
  at::Tensor ids = random_ids(3, 97, {2, 9});
  model::causal_lm_loss(a->forward(ids).logits, ids).backward();
  for (const auto& item : a->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
  }
}

TEST(Model, RejectsBadInput) {
  auto m = tiny("gpt2");
  torch::NoGradGuard ng;
  EXPECT_THROW(m->forward(at::ones({3}, at::kLong)), Error);
  EXPECT_THROW(m->forward(at::ones({1, 3}, at::kFloat)), Error);
  EXPECT_THROW(m->forward(at::full({1, 3}, 97, at::kLong)), Error);
  EXPECT_THROW(m->forward(at::ones({1, 300}, at::kLong)), Error);  // past 256 positions
  model::ForwardOptions fo;
  fo.attention_mask = at::ones({1, 4}, at::kLong);
  EXPECT_THROW(m->forward(at::ones({1, 3}, at::kLong), fo), Error);
}

TEST(Runtime, ReportFindsOpenBlas) {
  RuntimeReport r = runtime_report();
  EXPECT_FALSE(r.torch_version.empty());
  EXPECT_FALSE(r.blas_library.empty()) << "no BLAS mapped into the process";
  EXPECT_FALSE(r.reference_blas) << "reference BLAS in use: " << r.blas_library;
  EXPECT_GE(r.cores, 1);
  EXPECT_THROW(parse_device("tpu"), Error);
  EXPECT_TRUE(parse_device("cpu").is_cpu());
}

}  // namespace
}  // namespace lethe::test

namespace lethe::test {
namespace {

bool cpu_has_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

TEST(DecodeKernels, SmallLinearMatchesAtenForEveryRowCount) {
  if (!model::small_linear_applies(at::zeros({1, 8}), at::zeros({4, 8}))) {
    // The kernels only decline fp32 CPU inputs on CPUs without AVX2+FMA (ATen runs instead).
    EXPECT_FALSE(cpu_has_avx2_fma());
    return;
  }
  torch::NoGradGuard ng;
  at::Generator g = at::detail::createCPUGenerator(3);
  for (std::int64_t k : {8, 37, 768}) {
    for (std::int64_t n : {1, 5, 130}) {
      at::Tensor w = at::randn({n, k}, g), b = at::randn({n}, g);
      for (std::int64_t m = 1; m <= model::kSmallMatmulMaxRows; ++m) {
        at::Tensor x = at::randn({m, k}, g);
        const std::string what = "m=" + std::to_string(m) + " k=" + std::to_string(k) +
                                 " n=" + std::to_string(n);
        EXPECT_CLOSE(what, model::small_linear(x, w, b), at::linear(x, w, b), Tolerance{1e-4, 1e-5});
        EXPECT_CLOSE(what + " no bias", model::small_linear(x, w, {}), at::linear(x, w), Tolerance{1e-4, 1e-5});
      }
    }
  }
  // Rows beyond the limit, gradients and other dtypes take the ATen path.
  EXPECT_FALSE(model::small_linear_applies(at::zeros({17, 8}), at::zeros({4, 8})));
  EXPECT_FALSE(model::small_linear_applies(at::zeros({1, 8}, at::kDouble), at::zeros({4, 8}, at::kDouble)));
}

TEST(DecodeKernels, DecodeAttentionMatchesReference) {
  if (!model::decode_attention_applies(at::zeros({1, 1, 1, 8}), at::zeros({1, 1, 1, 8}), {})) {
    EXPECT_FALSE(cpu_has_avx2_fma());
    return;
  }
  torch::NoGradGuard ng;
  const std::int64_t b = 3, h = 6, kvh = 2, s = 19, d = 20;
  at::Generator g = at::detail::createCPUGenerator(4);
  at::Tensor q = at::randn({b, h, 1, d}, g);
  // A cache-like view: capacity 32, 19 positions used.
  at::Tensor kbuf = at::randn({b, kvh, 32, d}, g), vbuf = at::randn({b, kvh, 32, d}, g);
  at::Tensor k = kbuf.narrow(2, 0, s), v = vbuf.narrow(2, 0, s);
  at::Tensor mask = at::zeros({b, 1, 1, s});
  mask[1].narrow(-1, 0, 7).fill_(std::numeric_limits<float>::lowest());  // left padding
  at::Tensor kr = k.repeat_interleave(h / kvh, 1), vr = v.repeat_interleave(h / kvh, 1);
  at::Tensor want = at::matmul(at::softmax(at::matmul(q, kr.transpose(-1, -2)) + mask, -1), vr);
  EXPECT_CLOSE("decode attention", model::decode_attention(q, k, v, mask), want, Tolerance{1e-5, 1e-5});
  EXPECT_CLOSE("decode attention, no mask", model::decode_attention(q, k, v, {}),
               at::matmul(at::softmax(at::matmul(q, kr.transpose(-1, -2)), -1), vr),
               Tolerance{1e-5, 1e-5});
}

}  // namespace
}  // namespace lethe::test

namespace lethe::test {
namespace {

TEST(Hooks, ReachTheScorerAndTheGenerator) {
  auto m = tiny("mistral");
  int calls = 0;
  model::HookFunction count([&](const model::HookPoint& p, at::Tensor&) {
    if (p.site == model::HookSite::kFinalNorm) ++calls;
  });
  model::score_tokens(*m, at::ones({2, 5}, at::kLong), {}, {}, &count);
  EXPECT_EQ(calls, 1);
  model::GenerateOptions o;
  o.max_new_tokens = 4;
  o.stop_at_eos = false;
  o.hooks = &count;
  model::generate(*m, std::vector<std::vector<std::int64_t>>{{3, 4}}, o);
  EXPECT_EQ(calls, 1 + 4) << "prefill + 3 decode steps + the scorer's pass";
}

}  // namespace
}  // namespace lethe::test

namespace lethe::test {
namespace {

// The kernels under the half-weight path: the few-row kernel reads bf16/f16 exactly as fp32
// holding those values; the blocked conversion (a weight larger than one block) and its input
// gradient agree with sgemm on the converted weight.
TEST(HalfWeights, KernelsMatchFloatOnTheSameValues) {
  at::Generator g = at::detail::createCPUGenerator(3);
  for (const auto dt : {at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(c10::toString(dt));
    const at::Tensor w = at::randn({13, 37}, g).to(dt), b = at::randn({13}, g).to(dt);
    const at::Tensor x = at::randn({3, 37}, g);
    const at::Tensor want = model::linear(x, w.to(at::kFloat), b.to(at::kFloat));
    EXPECT_TRUE(model::linear(x, w, b).equal(want)) << "few rows";
    // The vectorised widening is .to(kFloat) bit for bit: infinities, subnormals, odd lengths.
    at::Tensor v = at::randn({1001}, g);
    v[0] = std::numeric_limits<float>::infinity();
    v[1] = -std::numeric_limits<float>::infinity();
    v[2] = 1e-40f;   // bf16 subnormal
    v[3] = 6e-8f;    // f16 subnormal
    v[4] = -0.0f;
    const at::Tensor h = v.to(dt);
    EXPECT_TRUE(model::widen_to_float(h).view(at::kInt).equal(h.to(at::kFloat).view(at::kInt)));
    v[5] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_TRUE(std::isnan(model::widen_to_float(v.to(dt))[5].item<float>()));
    // 16 MiB of fp32 per block: 70,000 rows of 64 take two blocks; 40 rows of x use sgemm.
    const std::int64_t n = model::kHalfBlockBytes / (64 * 4) + 4464;
    const at::Tensor wb = at::randn({n, 64}, g).to(dt);
    const at::Tensor xb = at::randn({40, 64}, g).requires_grad_(true);
    const at::Tensor yb = model::linear(xb, wb, at::Tensor());
    const at::Tensor xr = xb.detach().clone().requires_grad_(true);
    const at::Tensor yr = at::linear(xr, wb.to(at::kFloat));
    EXPECT_CLOSE("blocked forward", yb, yr, tol::kSelf);
    const at::Tensor up = at::randn({40, n}, g);
    (yb * up).sum().backward();
    (yr * up).sum().backward();
    EXPECT_CLOSE("blocked input gradient", xb.grad(), xr.grad(), Tolerance{1e-4, 1e-4});
  }
}

// A LoRA run's reference: the base's own tensors (no copy), without the adapters.
TEST(HalfWeights, SharedReferenceIsTheBaseWithoutAdapters) {
  auto m = tiny("llama");
  auto before = model::clone_model(*m);
  auto ref = model::share_weights(*m);
  auto mp = m->named_parameters();
  for (const auto& item : ref->named_parameters()) {
    EXPECT_EQ(item.value().data_ptr(), mp[item.key()].data_ptr()) << item.key();
    EXPECT_FALSE(item.value().requires_grad());
  }
  auto ad = train::LoraAdapter::attach(*m, {2, 4.0, 0.0, "", "default"}, 5);
  torch::NoGradGuard ng;
  for (auto& [name, t] : ad->named_parameters())
    if (name.find("lora_B") != std::string::npos) t.normal_(0.0, 0.3, at::detail::createCPUGenerator(5));
  at::Tensor ids = random_ids(3, 97, {2, 8});
  EXPECT_FALSE(m->forward(ids).logits.equal(before->forward(ids).logits));
  EXPECT_TRUE(ref->forward(ids).logits.equal(before->forward(ids).logits));
}

}  // namespace
}  // namespace lethe::test

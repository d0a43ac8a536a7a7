// Runtime benchmarks on a random-initialised ~110M-parameter Llama (hidden 768, 12 layers,
// 12 heads, MLP 2048, vocab 32000), fp32 — the model docs/performance.md measured the
// Hugging Face and llama.cpp figures on. Run through bench/run.sh, which runs every benchmark
// in its own process (so peak RSS is per workload) under both OpenBLAS settings.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "lethe/core/runtime.h"
#include "lethe/model/generate.h"
#include "bench_common.h"
#include "bench_models.h"
#include "lethe/model/load.h"
#include "lethe/model/score.h"
#include "lethe/train/lora.h"
#include "lethe/train/optimizer.h"

namespace {
using lethe::model::CausalLM;
using lethe::bench::finish;
using lethe::bench::peak_rss_gib;

using lethe::bench::llama110m_config;

CausalLM& llama110m() {
  static std::shared_ptr<CausalLM> model = lethe::model::create_model(llama110m_config(), {}, /*seed=*/0);
  return *model;
}


at::Tensor random_ids(std::int64_t b, std::int64_t t) {
  at::Generator g = at::detail::createCPUGenerator(1234);
  return at::randint(3, 32000, {b, t}, g, at::kLong);
}


// Forward + per-token log-probs of every target, batch 8 x 256.
void BM_Score_8x256(benchmark::State& state) {
  CausalLM& m = llama110m();
  at::Tensor ids = random_ids(8, 256);
  lethe::model::score_tokens(m, ids);  // warm-up
  for (auto _ : state) benchmark::DoNotOptimize(lethe::model::score_tokens(m, ids).logprobs);
  finish(state, 8.0 * 256);
}

// Forward to full logits (B, T, V), batch 8 x 256.
void BM_ForwardLogits_8x256(benchmark::State& state) {
  CausalLM& m = llama110m();
  at::Tensor ids = random_ids(8, 256);
  torch::NoGradGuard ng;
  m.forward(ids);
  for (auto _ : state) benchmark::DoNotOptimize(m.forward(ids).logits);
  finish(state, 8.0 * 256);
}

// Greedy decoding with the KV cache: B prompts of 32 tokens, 128 new tokens each. The rate
// counts new tokens over the whole call, prefill included.
void BM_GreedyDecode(benchmark::State& state) {
  CausalLM& m = llama110m();
  const std::int64_t b = state.range(0);
  at::Tensor ids = random_ids(b, 32);
  lethe::model::GenerateOptions o;
  o.max_new_tokens = 128;
  o.stop_at_eos = false;
  lethe::model::generate(m, ids, {}, o);  // warm-up
  for (auto _ : state) benchmark::DoNotOptimize(lethe::model::generate(m, ids, {}, o).tokens);
  finish(state, 128.0 * static_cast<double>(b));
}

// One training step's forward + backward (no optimizer), batch 4 x 256.
void BM_ForwardBackward_4x256(benchmark::State& state) {
  CausalLM& m = llama110m();
  at::Tensor ids = random_ids(4, 256);
  m.train();
  auto step = [&] {
    m.zero_grad();
    lethe::model::causal_lm_loss(m.forward(ids).logits, ids).backward();
  };
  step();
  for (auto _ : state) step();
  m.eval();
  finish(state, 4.0 * 256);
}

// The machine's limits, measured in the same process: sgemm throughput on the model's MLP
// shape, and memory bandwidth reading the model's size. Figures above are judged against these.
void BM_Roofline_Sgemm(benchmark::State& state) {
  at::Tensor x = at::randn({2048, 768}), w = at::randn({2048, 768});
  at::linear(x, w);
  for (auto _ : state) benchmark::DoNotOptimize(at::linear(x, w));
  state.counters["GFLOP_per_s"] = benchmark::Counter(
      2.0 * 2048 * 768 * 2048 * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
  state.counters["threads"] = lethe::threads();
}

void BM_Roofline_MemoryRead(benchmark::State& state) {
  at::Tensor big = at::randn({110'000'000});  // 440 MB, the 110M model's fp32 weights
  big.sum();
  for (auto _ : state) benchmark::DoNotOptimize(big.sum());
  state.counters["GB_per_s"] = benchmark::Counter(
      4.4e8 * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.counters["threads"] = lethe::threads();
}

// A full training step — forward, loss, backward, clipping, AdamW — batch 4 x 256, fp32.
// `rank` 0: full fine-tune; r > 0: LoRA rank r on every attention and MLP linear.
// `checkpoint`: gradient checkpointing (blocks recomputed in backward).
void train_step(benchmark::State& state, std::int64_t rank, bool checkpoint) {
  lethe::model::ModelConfig c = llama110m_config();
  auto m = lethe::model::create_model(c, {}, 0);  // its own copy: training changes it
  m->train();
  m->set_gradient_checkpointing(checkpoint);
  std::shared_ptr<lethe::train::LoraAdapter> adapter;
  std::vector<std::pair<std::string, at::Tensor>> params;
  if (rank > 0) {
    adapter = lethe::train::LoraAdapter::attach(*m, {rank, 2.0 * static_cast<double>(rank), 0.0, "", "default"}, 0);
    params = adapter->named_parameters();
  } else {
    for (auto& item : m->named_parameters()) params.emplace_back(item.key(), item.value());
  }
  for (auto& [_, p] : params) p.set_requires_grad(true);
  lethe::bench::train_steps(state, *m, params, random_ids(4, 256));
  state.counters["trainable_M"] = 0;
  std::int64_t n = 0;
  for (auto& [_, p] : params) n += p.numel();
  state.counters["trainable_M"] = static_cast<double>(n) / 1e6;
}

void BM_TrainStep_4x256(benchmark::State& state) { train_step(state, state.range(0), false); }
void BM_TrainStepCheckpointed_4x256(benchmark::State& state) { train_step(state, state.range(0), true); }

BENCHMARK(BM_Roofline_Sgemm)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_Roofline_MemoryRead)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_Score_8x256)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);
BENCHMARK(BM_ForwardLogits_8x256)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);
BENCHMARK(BM_GreedyDecode)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);
BENCHMARK(BM_ForwardBackward_4x256)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);
BENCHMARK(BM_TrainStep_4x256)->Arg(0)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);
BENCHMARK(BM_TrainStepCheckpointed_4x256)->Arg(0)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(5.0);

}  // namespace

int main(int argc, char** argv) {
  const char* t = std::getenv("LETHE_BENCH_THREADS");
  lethe::configure_runtime(t != nullptr ? std::atoi(t) : 2);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// Benchmarks on a random model shaped as Llama-3.2-1B (bench_models.h): what half-size frozen
// weights and gradient checkpointing buy at the size the field unlearns (issue 14). Each
// benchmark runs in its own process (bench/run_large.sh), so peak RSS is that workload's: the
// load included, since loading is part of what a user pays.
//
//   bench_large --make-checkpoint DIR    writes the random model (bf16 safetensors) once
//   LETHE_BENCH_LARGE_DIR=DIR bench_large --benchmark_filter=...
//
// Arguments: dtype 0 = float32, 1 = bfloat16 (the weights as held; computation is fp32).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "bench_common.h"
#include "bench_models.h"
#include "lethe/core/runtime.h"
#include "lethe/data/batch.h"
#include "lethe/model/generate.h"
#include "lethe/model/load.h"
#include "lethe/model/score.h"
#include "lethe/train/lora.h"
#include "lethe/train/optimizer.h"
#include "lethe/unlearn/method.h"

namespace {
namespace fs = std::filesystem;
using lethe::model::CausalLM;
using lethe::bench::finish;
using lethe::bench::peak_rss_gib;

constexpr std::int64_t kVocab = 128256;

fs::path checkpoint_dir() {
  const char* d = std::getenv("LETHE_BENCH_LARGE_DIR");
  return d != nullptr ? fs::path(d) : fs::path("/tmp/lethe-bench-llama32-1b");
}

c10::ScalarType dtype_of(const benchmark::State& state) { return state.range(0) == 1 ? at::kBFloat16 : at::kFloat; }

std::shared_ptr<CausalLM> load(c10::ScalarType dtype) {
  lethe::model::LoadOptions lo;
  lo.dtype = dtype;
  return lethe::model::load_model(checkpoint_dir(), lo);
}


at::Tensor random_ids(std::int64_t b, std::int64_t t, std::uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  return at::randint(3, kVocab, {b, t}, g, at::kLong);
}

lethe::data::Batch batch_of(const at::Tensor& ids) {
  lethe::data::Batch b;
  b.input_ids = ids;
  b.attention_mask = at::ones_like(ids);
  b.labels = ids.clone();
  b.position_ids = lethe::model::positions_from_mask(b.attention_mask);
  return b;
}


// Loading for evaluation: the whole model read from the bf16 checkpoint into `dtype`.
void BM_Load(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(load(dtype_of(state)));
  state.counters["peak_rss_GiB"] = peak_rss_gib();
}

// Forward + per-token log-probs of every target, batch 8 x 256 (the evaluation path).
void BM_Score_8x256(benchmark::State& state) {
  auto m = load(dtype_of(state));
  at::Tensor ids = random_ids(8, 256, 1);
  lethe::model::score_tokens(*m, ids);  // warm-up
  for (auto _ : state) benchmark::DoNotOptimize(lethe::model::score_tokens(*m, ids).logprobs);
  finish(state, 8.0 * 256);
}

// Greedy decoding with the KV cache, one prompt of 32 tokens, 16 new tokens (the rate counts
// new tokens, prefill included): the few-row kernel reading bf16 or fp32 weights.
void BM_GreedyDecode_1x16(benchmark::State& state) {
  auto m = load(dtype_of(state));
  at::Tensor ids = random_ids(1, 32, 5);
  lethe::model::GenerateOptions o;
  o.max_new_tokens = 16;
  o.stop_at_eos = false;
  lethe::model::generate(*m, ids, {}, o);  // warm-up
  for (auto _ : state) benchmark::DoNotOptimize(lethe::model::generate(*m, ids, {}, o).tokens);
  finish(state, 16.0);
}

// One NPO unlearning step with LoRA r16 on every attention and MLP linear: forget and retain
// batches of 4 x 256, the frozen reference (the base itself, lethe::model::share_weights),
// backward, clipping, AdamW. range(1): gradient checkpointing.
void BM_NpoLoraStep_4x256(benchmark::State& state) {
  auto m = load(dtype_of(state));
  auto ref = lethe::model::share_weights(*m);
  auto adapter = lethe::train::LoraAdapter::attach(*m, {16, 32.0, 0.0, "", "default"}, 0);
  m->train();
  m->set_gradient_checkpointing(state.range(1) == 1);
  auto params = adapter->named_parameters();
  lethe::train::AdamW opt(params, {1e-5, 0.9, 0.999, 1e-8, 0.01});
  auto method = lethe::unlearn::make_method("NPO");
  lethe::unlearn::UnlearnBatch b;
  b.forget = batch_of(random_ids(4, 256, 2));
  b.retain = batch_of(random_ids(4, 256, 3));
  auto step = [&] {
    opt.zero_grad();
    method->loss(*m, ref.get(), b).total.backward();
    lethe::train::clip_grad_norm(params, 1.0);
    opt.step(1e-5);
  };
  step();  // warm-up
  for (auto _ : state) step();
  finish(state, 8.0 * 256);
}

// A full fine-tuning step (every weight trained, fp32 with fp32 AdamW state), batch 4 x 256,
// with gradient checkpointing.
void BM_FullStepCheckpointed_4x256(benchmark::State& state) {
  auto m = load(at::kFloat);
  m->train();
  m->set_gradient_checkpointing(true);
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& item : m->named_parameters()) {
    item.value().set_requires_grad(true);
    params.emplace_back(item.key(), item.value());
  }
  lethe::bench::train_steps(state, *m, params, random_ids(4, 256, 4));
}

BENCHMARK(BM_Load)->Arg(0)->Arg(1)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_Score_8x256)->Arg(0)->Arg(1)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_GreedyDecode_1x16)->Arg(0)->Arg(1)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_NpoLoraStep_4x256)
    ->Args({0, 0})->Args({1, 0})->Args({0, 1})->Args({1, 1})
    ->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_FullStepCheckpointed_4x256)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);

}  // namespace

int main(int argc, char** argv) {
  const char* t = std::getenv("LETHE_BENCH_THREADS");
  lethe::configure_runtime(t != nullptr ? std::atoi(t) : 2);
  if (argc == 3 && std::strcmp(argv[1], "--make-checkpoint") == 0) {
    lethe::model::LoadOptions lo;
    lo.dtype = at::kBFloat16;
    auto m = lethe::model::create_model(lethe::bench::llama32_1b_config(), lo, /*seed=*/0);
    lethe::model::save_model(*m, argv[2], {at::kBFloat16, /*replace=*/true});
    std::cout << argv[2] << ": " << m->parameter_count() << " parameters, bf16\n";
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (!fs::exists(checkpoint_dir() / "config.json")) {
    std::cerr << "bench_large: no model in " << checkpoint_dir().string()
              << " (bench_large --make-checkpoint DIR, or bench/run_large.sh)\n";
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

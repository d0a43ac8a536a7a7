// What every Google Benchmark program here reports: tokens/s, the process's peak RSS (each
// benchmark runs in its own process, bench/run*.sh), and the thread count.
#pragma once

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include "lethe/core/runtime.h"
#include "lethe/model/causal_lm.h"
#include "lethe/model/score.h"
#include "lethe/train/optimizer.h"

namespace lethe::bench {

inline double peak_rss_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);
}

inline void finish(benchmark::State& state, double tokens_per_iteration) {
  state.counters["tokens_per_s"] = benchmark::Counter(
      tokens_per_iteration * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["peak_rss_GiB"] = peak_rss_gib();
  state.counters["threads"] = lethe::threads();
}

// Causal-LM training steps on `ids` — forward, loss, backward, clipping, AdamW over `params` —
// one warm-up, then the timed ones; reports tokens/s.
inline void train_steps(benchmark::State& state, model::CausalLM& m,
                        const std::vector<std::pair<std::string, at::Tensor>>& params, const at::Tensor& ids) {
  train::AdamW opt(params, {1e-5, 0.9, 0.999, 1e-8, 0.01});
  auto step = [&] {
    opt.zero_grad();
    model::causal_lm_loss(m.forward(ids).logits, ids).backward();
    train::clip_grad_norm(params, 1.0);
    opt.step(1e-5);
  };
  step();
  for (auto _ : state) step();
  finish(state, static_cast<double>(ids.numel()));
}

}  // namespace lethe::bench

// What every Google Benchmark program here reports: tokens/s, the process's peak RSS (each
// benchmark runs in its own process, bench/run*.sh), and the thread count.
#pragma once

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include "lethe/core/runtime.h"

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

}  // namespace lethe::bench

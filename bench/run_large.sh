#!/usr/bin/env bash
# Runs the Llama-3.2-1B-shaped benchmarks (bench/bench_large.cpp) in both OpenBLAS settings
# (OPENBLAS_CORETYPE=Haswell, as in tests and CI, and unset = auto-detected kernels), each
# benchmark in its own process so peak RSS is per workload, and prints a table. Writes the
# random bf16 checkpoint (2.5 GB) first when it is missing. About 30 minutes per setting on
# 2 cores; one iteration each (after a warm-up where the benchmark has one).
#   bench/run_large.sh [BUILD_DIR]   LETHE_BENCH_LARGE_DIR (default /tmp/lethe-bench-llama32-1b),
#                                    LETHE_BENCH_THREADS (default 2), LETHE_BENCH_SETTINGS
#                                    (default "Haswell auto"), LETHE_BENCH_FILTER (a regex)
set -euo pipefail
build=${1:-build}
bin=$build/bin/bench_large
[ -x "$bin" ] || { echo "bench/run_large.sh: $bin not built (make build)" >&2; exit 1; }
export LETHE_BENCH_THREADS=${LETHE_BENCH_THREADS:-2}
export LETHE_BENCH_LARGE_DIR=${LETHE_BENCH_LARGE_DIR:-/tmp/lethe-bench-llama32-1b}
[ -f "$LETHE_BENCH_LARGE_DIR/config.json" ] || "$bin" --make-checkpoint "$LETHE_BENCH_LARGE_DIR"

mapfile -t benches < <("$bin" --benchmark_list_tests | grep -E "${LETHE_BENCH_FILTER:-.}")
counter() { sed -n "s/.*$2=\([0-9.]*[kMG]\{0,1\}\).*/\1/p" <<<"$1"; }

declare -A result
settings=(${LETHE_BENCH_SETTINGS:-Haswell auto})
for setting in "${settings[@]}"; do
  for b in "${benches[@]}"; do
    if [ "$setting" = auto ]; then run=(env -u OPENBLAS_CORETYPE "$bin"); else run=(env OPENBLAS_CORETYPE=Haswell "$bin"); fi
    out=$("${run[@]}" --benchmark_filter="^${b}\$" 2>/dev/null | grep "^BM_" | head -n 1 || true)
    rate=$(counter "$out" tokens_per_s)
    rss=$(counter "$out" peak_rss_GiB)
    secs=$(awk '{print $2}' <<<"$out")
    if [ -z "$out" ]; then v="failed (exit or out of memory)"; elif [ -n "$rate" ]; then v="$rate tok/s, ${secs} s, peak RSS $rss GiB"; else v="${secs} s, peak RSS $rss GiB"; fi
    result["$setting|$b"]=$v
    echo "[$setting] $b: $v" >&2
  done
done

echo
echo "lethe large-model benchmarks: Llama-3.2-1B shape (1.236 B parameters), ${LETHE_BENCH_THREADS} threads, one iteration ($(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo "dtype argument: 0 = float32, 1 = bfloat16 weights; NpoLoraStep's second: gradient checkpointing"
echo
header="| benchmark |"; rule="|---|"
for s in "${settings[@]}"; do header+=" OPENBLAS $s |"; rule+="---|"; done
echo "$header"; echo "$rule"
for b in "${benches[@]}"; do
  line="| ${b%/iterations:1/real_time} |"
  for s in "${settings[@]}"; do line+=" ${result[$s|$b]} |"; done
  echo "$line"
done

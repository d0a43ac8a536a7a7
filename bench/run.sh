#!/usr/bin/env bash
# Runs the runtime benchmarks in both OpenBLAS settings (OPENBLAS_CORETYPE=Haswell, as in tests
# and CI, and unset = the kernels OpenBLAS auto-detects, AVX-512 where the CPU has it), each
# benchmark in its own process so peak RSS is per workload, and prints the medians.
#   bench/run.sh [BUILD_DIR]        LETHE_BENCH_REPS (default 5), LETHE_BENCH_THREADS (default 2)
set -euo pipefail
build=${1:-build}
bin=$build/bin/bench_runtime
reps=${LETHE_BENCH_REPS:-5}
[ -x "$bin" ] || { echo "bench/run.sh: $bin not built (make build)" >&2; exit 1; }
export LETHE_BENCH_THREADS=${LETHE_BENCH_THREADS:-2}

benches=(BM_Roofline_Sgemm BM_Roofline_MemoryRead BM_Score_8x256 BM_ForwardLogits_8x256
         BM_GreedyDecode/1/ BM_GreedyDecode/8/ BM_ForwardBackward_4x256
         BM_TrainStep_4x256/0/ BM_TrainStep_4x256/16/ BM_TrainStepCheckpointed_4x256/0/
         BM_TrainStepCheckpointed_4x256/16/)

# median <line of google-benchmark console output> <counter> -> value
counter() { sed -n "s/.*$2=\([0-9.]*[kMG]\{0,1\}\).*/\1/p" <<<"$1"; }

declare -A result
for setting in Haswell auto; do
  for b in "${benches[@]}"; do
    if [ "$setting" = auto ]; then run=(env -u OPENBLAS_CORETYPE "$bin"); else run=(env OPENBLAS_CORETYPE=Haswell "$bin"); fi
    out=$("${run[@]}" --benchmark_filter="^${b}" --benchmark_repetitions="$reps" \
            --benchmark_report_aggregates_only=true 2>/dev/null | grep "_median" | head -n 1)
    case "$b" in
      BM_Roofline_Sgemm) v="$(counter "$out" GFLOP_per_s) GFLOP/s" ;;
      BM_Roofline_MemoryRead) v="$(counter "$out" GB_per_s) GB/s" ;;
      *) v="$(counter "$out" tokens_per_s) tok/s, peak RSS $(counter "$out" peak_rss_GiB) GiB" ;;
    esac
    result["$setting|$b"]=$v
    echo "[$setting] $b: $v" >&2
  done
done

echo
echo "lethe runtime benchmarks: llama 110M fp32, ${LETHE_BENCH_THREADS} threads, median of $reps ($(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
echo "| benchmark | OPENBLAS_CORETYPE=Haswell | auto-detected kernels |"
echo "|---|---|---|"
for b in "${benches[@]}"; do
  echo "| ${b%/} | ${result[Haswell|$b]} | ${result[auto|$b]} |"
done

#!/usr/bin/env bash
# Tokenizer encode throughput, lethe vs the reference JavaScript implementation
# @huggingface/tokenizers under node, on the same ~10 MB of mixed English / code / CJK text and
# the GPT-2 tokenizer.json, one thread each. Also checks that both produce the same ids for
# every document. Installs the npm package into a temporary folder (npm registry needed).
#   bench/tokenizer/compare.sh [BUILD_DIR]      SHARED (default ../shared), PASSES (default 3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${1:-$repo/build}
shared=${SHARED:-$repo/../shared}
passes=${PASSES:-3}
tokdir=$shared/data/tokenizers/gpt2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v node >/dev/null || { echo "compare.sh: node is required" >&2; exit 1; }
[ -x "$build/bin/bench_tokenizer" ] || { echo "compare.sh: build bench_tokenizer first (make build)" >&2; exit 1; }

(cd "$work" && npm init -y >/dev/null && npm install --silent @huggingface/tokenizers@0.2.0 >/dev/null)
cp "$here/bench.mjs" "$here/make_corpus.mjs" "$work/"
node "$work/make_corpus.mjs" "$shared" "$repo" "$work/corpus.jsonl"

js=$(cd "$work" && node bench.mjs "$tokdir" corpus.jsonl js_ids.jsonl "$passes")
ours=$("$build/bin/bench_tokenizer" "$tokdir/tokenizer.json" "$work/corpus.jsonl" "$work/js_ids.jsonl" "$passes")
echo "$js"
echo "$ours"
node -e '
const js = JSON.parse(process.argv[1]), ours = JSON.parse(process.argv[2]);
const f = (x) => x.toFixed(2);
console.log(`\n| implementation | first pass MB/s | median of ${ours.passes} MB/s |`);
console.log("|---|---|---|");
console.log(`| @huggingface/tokenizers 0.2.0 (node ${process.version}) | ${f(js.mb_per_s_first)} | ${f(js.mb_per_s_median)} |`);
console.log(`| lethe | ${f(ours.mb_per_s_first)} | ${f(ours.mb_per_s_median)} |`);
console.log(`\nspeed-up (median): ${f(ours.mb_per_s_median / js.mb_per_s_median)}x; ${(ours.bytes/1048576).toFixed(2)} MiB, ${ours.documents} documents; ids identical in ${ours.compared - ours.mismatched} of ${ours.compared} documents`);
' "$js" "$ours"

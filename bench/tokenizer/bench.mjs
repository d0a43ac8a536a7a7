// Encode throughput of @huggingface/tokenizers (Tokenizers.js) on a JSONL corpus, one thread.
// Usage: node bench.mjs TOKENIZER_DIR CORPUS.jsonl IDS_OUT.jsonl [PASSES]
// Prints one JSON line: {"impl", "mb_per_s_first", "mb_per_s_median", "passes", "bytes", "tokens"}.
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

const [dir, corpus, idsOut, passesArg] = process.argv.slice(2);
const passes = Number(passesArg ?? 3);
const tj = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const cfgPath = path.join(dir, "tokenizer_config.json");
const cfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
const tok = new Tokenizer(tj, cfg);
const docs = fs.readFileSync(corpus, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l).text);
const bytes = docs.reduce((a, d) => a + Buffer.byteLength(d, "utf8"), 0);

const rates = [];
let tokens = 0;
const ids = [];
for (let p = 0; p < passes; ++p) {
  const t0 = process.hrtime.bigint();
  let n = 0;
  for (const d of docs) {
    const e = tok.encode(d, { add_special_tokens: false });
    n += e.ids.length;
    if (p === 0) ids.push(e.ids);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rates.push(bytes / 1048576 / s);
  tokens = n;
}
fs.writeFileSync(idsOut, ids.map((x) => JSON.stringify(x)).join("\n") + "\n");
const sorted = [...rates].sort((a, b) => a - b);
console.log(JSON.stringify({ impl: "@huggingface/tokenizers", mb_per_s_first: rates[0],
  mb_per_s_median: sorted[Math.floor(sorted.length / 2)], passes, bytes, tokens }));

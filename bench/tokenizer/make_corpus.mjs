// Writes ~10 MB of mixed English / code / CJK documents as JSONL ({"text": ...} per line),
// deterministically, from files present on this machine: English from the TOFU and MUSE-News
// fixtures, code from this repository and a system C++ header, CJK text generated from common
// Han characters and punctuation. Usage: node make_corpus.mjs SHARED_DIR REPO_DIR OUT.jsonl
import fs from "node:fs";
import path from "node:path";

const [shared, repo, out] = process.argv.slice(2);
const target = 10 * 1024 * 1024;

function englishDocs() {
  const docs = [];
  for (const line of fs.readFileSync(path.join(shared, "data/tofu/full.jsonl"), "utf8").split("\n")) {
    if (line.trim()) { const r = JSON.parse(line); docs.push(`Question: ${r.question}\nAnswer: ${r.answer}`); }
  }
  for (const f of ["forget", "retain", "holdout"]) {
    for (const t of JSON.parse(fs.readFileSync(path.join(shared, `data/muse-news/privleak/${f}.json`), "utf8"))) {
      docs.push(typeof t === "string" ? t : (t.text ?? JSON.stringify(t)));
    }
  }
  return docs;
}

function codeDocs() {
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(cpp|h|hpp)$/.test(e.name)) files.push(p);
    }
  };
  walk(path.join(repo, "src"));
  walk(path.join(repo, "tests"));
  if (fs.existsSync("/usr/include/nlohmann/json.hpp")) files.push("/usr/include/nlohmann/json.hpp");
  const docs = [];
  for (const f of files) {
    const text = fs.readFileSync(f, "utf8");
    for (let i = 0; i < text.length; i += 3000) docs.push(text.slice(i, i + 3000));
  }
  return docs;
}

function cjkDocs(n) {
  let seed = 12345;
  const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const punct = ["，", "。", "、", "：", "「", "」", " "];
  const docs = [];
  for (let d = 0; d < n; ++d) {
    let s = "";
    while (s.length < 900) {
      const run = 2 + Math.floor(rand() * 7);
      for (let k = 0; k < run; ++k) s += String.fromCodePoint(0x4e00 + Math.floor(rand() * 3000));
      s += punct[Math.floor(rand() * punct.length)];
      if (rand() < 0.05) s += " 2024年" + Math.floor(rand() * 12 + 1) + "月 ";
    }
    docs.push(s);
  }
  return docs;
}

const en = englishDocs(), code = codeDocs(), cjk = cjkDocs(4000);
const out_lines = [];
let bytes = 0, i = 0;
while (bytes < target) {
  const pick = i % 20;  // 11 English : 6 code : 3 CJK
  const src = pick < 11 ? en : pick < 17 ? code : cjk;
  const doc = src[Math.floor(i / 20 * 7 + pick) % src.length];
  out_lines.push(JSON.stringify({ text: doc }));
  bytes += Buffer.byteLength(doc, "utf8");
  ++i;
}
fs.writeFileSync(out, out_lines.join("\n") + "\n");
console.error(`make_corpus: ${out_lines.length} documents, ${(bytes / 1048576).toFixed(2)} MiB -> ${out}`);

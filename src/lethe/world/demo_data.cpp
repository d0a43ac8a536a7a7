#include "world/demo_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/core/random.h"
#include "lethe/core/labels.h"
#include "lethe/core/version.h"
#include "lethe/data/dataset.h"
#include "lethe/data/records.h"
#include "lethe/text/template.h"

namespace lethe::world {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// One file's records as their original lines (written back byte for byte) and their questions.
struct Lines {
  std::vector<std::string> text, questions;
};

Lines read_lines(const fs::path& f, const std::string& content) {
  Lines l;
  std::istringstream in(content);
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const Json r = json_named(f.string() + ": line " + std::to_string(n), [&] { return Json::parse(line); });
    LETHE_CHECK(r.is_object() && r.contains("question") && r["question"].is_string() && r.contains("answer") &&
                    r["answer"].is_string(),
                f.string(), ": line ", n, ": a QA record needs string fields \"question\" and \"answer\"");
    l.text.push_back(line);
    l.questions.push_back(r["question"]);
  }
  return l;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// The lines of `l` whose question is in `keep`.
std::vector<std::string> about(const Lines& l, const std::set<std::string>& keep) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < l.text.size(); ++i) {
    if (keep.count(l.questions[i])) out.push_back(l.text[i]);
  }
  return out;
}

void add_corpus(std::vector<std::string>& c, const std::string& line) {
  const Json r = Json::parse(line);
  c.push_back("Question: " + r["question"].get<std::string>() + "\nAnswer: " + r["answer"].get<std::string>());
  if (r.contains("paraphrased_question") && r.contains("paraphrased_answer") && r["paraphrased_question"].is_string() &&
      r["paraphrased_answer"].is_string()) {
    c.push_back(r["paraphrased_question"].get<std::string>() + " " + r["paraphrased_answer"].get<std::string>());
  }
  if (r.contains("perturbed_answer") && r["perturbed_answer"].is_array()) {
    for (const auto& p : r["perturbed_answer"]) {
      if (p.is_string()) c.push_back(p);
    }
  }
}

}  // namespace

std::string short_hash(const Json& j) {
  const std::string s = j.dump() + version();
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%012llx", static_cast<unsigned long long>(fnv1a64(s.data(), s.size()) & 0xffffffffffffULL));
  return buf;
}

DemoData folder_data(const fs::path& source, const std::string& split, std::int64_t authors, const fs::path& cache) {
  const std::string nn = split.substr(6), retain = "retain" + std::to_string(100 - std::stoi(nn));
  const std::vector<std::pair<std::string, std::string>> needed = {
      {"full.jsonl", "every trained QA item"},
      {split + ".jsonl", "the forget split"},
      {split + "_perturbed.jsonl", "the forget split with paraphrased and perturbed answers"},
      {"holdout" + nn + ".jsonl", "the never-trained authors that membership inference compares with"},
      {"retain_perturbed.jsonl", "retained items with paraphrased and perturbed answers"},
      {"real_authors.jsonl", "real authors' QA"},
      {"real_authors_perturbed.jsonl", "real authors' QA with wrong options"},
      {"world_facts.jsonl", "world facts' QA"},
      {"world_facts_perturbed.jsonl", "world facts' QA with wrong options"},
      {"idontknow.jsonl", "refusals (the IdkDPO and IdkNLL methods)"}};
  std::map<std::string, std::string> content;  // each file read once: hashed, then parsed
  std::uint64_t h = kFnv1aOffset;
  for (const auto& [name, what] : needed) {
    const fs::path f = source / name;
    LETHE_CHECK(fs::is_regular_file(f), "demo --data: ", f.string(), " is missing (", what,
                "); the folder must have TOFU's layout (docs/demo.md)");
    const std::string& s = content[name] = read_file(f);
    h = fnv1a64(s.data(), s.size(), h);
  }
  auto lines_of = [&](const std::string& name) { return read_lines(source / name, content.at(name)); };
  std::int64_t k = 20;  // TOFU's questions per author, unless the folder's manifest says otherwise
  if (const fs::path m = source / "world.json"; fs::exists(m)) {
    const Json w = parse_json_file(m);
    if (w.contains("qa_per_person") && w["qa_per_person"].is_number_integer()) k = w["qa_per_person"];
  }
  LETHE_CHECK(k > 0, "demo --data: ", (source / "world.json").string(), ": qa_per_person must be positive");
  const Lines full = lines_of("full.jsonl"), forget = lines_of(split + ".jsonl");
  const auto n_items = static_cast<std::int64_t>(full.text.size());
  LETHE_CHECK(n_items > 0 && n_items % k == 0, "demo --data: ", (source / "full.jsonl").string(), " has ", n_items,
              " items, not whole authors of ", k, " consecutive questions each");
  const std::set<std::string> forget_q(forget.questions.begin(), forget.questions.end());
  // Each author is a block of k items of full.jsonl; the forget split must be whole blocks.
  std::vector<std::int64_t> forget_blocks, retain_blocks;
  for (std::int64_t b = 0; b < n_items / k; ++b) {
    std::int64_t in = 0;
    for (std::int64_t i = b * k; i < (b + 1) * k; ++i) in += forget_q.count(full.questions[i]);
    LETHE_CHECK(in == 0 || in == k, "demo --data: author ", b, " (items ", b * k + 1, "-", (b + 1) * k, " of ",
                (source / "full.jsonl").string(), ") is partly in ", split, ".jsonl (", in, " of ", k,
                " items): a forget split must be whole authors");
    (in ? forget_blocks : retain_blocks).push_back(b);
  }
  LETHE_CHECK(!forget_blocks.empty() && static_cast<std::size_t>(forget_blocks.size()) * k == forget_q.size(),
              "demo --data: ", (source / (split + ".jsonl")).string(), " has items that are not in full.jsonl");
  LETHE_CHECK(!retain_blocks.empty(), "demo --data: every author of ", (source / "full.jsonl").string(), " is in ", split);
  const auto all = static_cast<std::int64_t>(forget_blocks.size() + retain_blocks.size());
  std::int64_t nf = static_cast<std::int64_t>(forget_blocks.size()), nr = static_cast<std::int64_t>(retain_blocks.size());
  if (authors > 0) {
    LETHE_CHECK(authors >= 2 && authors <= all, "demo --authors: between 2 and the folder's ", all, " authors, got ", authors);
    nf = std::max<std::int64_t>(1, std::llround(static_cast<double>(authors) * nf / all));
    nf = std::min(nf, authors - 1);
    nr = authors - nf;
    LETHE_CHECK(nf <= static_cast<std::int64_t>(forget_blocks.size()) && nr <= static_cast<std::int64_t>(retain_blocks.size()),
                "demo --authors ", authors, ": the folder has ", forget_blocks.size(), " forget and ", retain_blocks.size(),
                " retained authors");
  }
  forget_blocks.resize(nf);
  retain_blocks.resize(nr);
  std::set<std::string> chosen_f, chosen_r;
  std::vector<std::string> full_out, forget_out, retain_out;
  std::set<std::int64_t> fb(forget_blocks.begin(), forget_blocks.end()), rb(retain_blocks.begin(), retain_blocks.end());
  for (std::int64_t i = 0; i < n_items; ++i) {
    const bool f = fb.count(i / k) > 0;
    if (!f && !rb.count(i / k)) continue;
    full_out.push_back(full.text[i]);
    (f ? forget_out : retain_out).push_back(full.text[i]);
    (f ? chosen_f : chosen_r).insert(full.questions[i]);
  }
  const Lines holdout = lines_of("holdout" + nn + ".jsonl");
  std::vector<std::string> holdout_out = holdout.text;
  if (authors > 0) {  // as many holdout authors as forget ones: privleak compares the two sets
    LETHE_CHECK(static_cast<std::int64_t>(holdout.text.size()) >= nf * k, "demo --authors: ",
                (source / ("holdout" + nn + ".jsonl")).string(), " has ", holdout.text.size(), " items, fewer than ", nf,
                " authors of ", k);
    holdout_out.resize(static_cast<std::size_t>(nf * k));
  }
  const std::vector<std::string> forget_pert = about(lines_of(split + "_perturbed.jsonl"), chosen_f);
  const std::vector<std::string> retain_pert = about(lines_of("retain_perturbed.jsonl"), chosen_r);
  LETHE_CHECK(!forget_pert.empty(), "demo --data: no item of ", (source / (split + "_perturbed.jsonl")).string(),
              " is about the chosen forget authors");
  LETHE_CHECK(!retain_pert.empty(), "demo --data: no item of ", (source / "retain_perturbed.jsonl").string(),
              " is about the ", nr, " chosen retained authors (give more --authors)");

  DemoData d;
  d.key = {{"source_fnv1a", h}, {"split", split}, {"authors", authors}, {"items_per_author", k}, {"layout", 1}};
  d.authors = nf + nr;
  d.forget_authors = nf;
  d.items_per_author = k;
  std::vector<std::size_t> words;
  for (const auto& l : forget_out) {
    std::istringstream in(Json::parse(l)["answer"].get<std::string>());
    words.push_back(static_cast<std::size_t>(std::distance(std::istream_iterator<std::string>(in), {})));
  }
  std::sort(words.begin(), words.end());
  const std::size_t m = words.size() / 2;
  d.forget_answer_words = words.size() % 2 ? words[m] : 0.5 * (words[m - 1] + words[m]);
  d.dir = cache / ("data-" + short_hash(d.key));
  if (!fs::exists(d.dir / "full.jsonl")) {
    StagedFolder staged(d.dir, /*replace=*/true, "demo data");
    const fs::path o = staged.path();
    write_file_atomic(o / "full.jsonl", joined(full_out));
    write_file_atomic(o / (split + ".jsonl"), joined(forget_out));
    write_file_atomic(o / (retain + ".jsonl"), joined(retain_out));
    write_file_atomic(o / (split + "_perturbed.jsonl"), joined(forget_pert));
    write_file_atomic(o / "retain_perturbed.jsonl", joined(retain_pert));
    write_file_atomic(o / ("holdout" + nn + ".jsonl"), joined(holdout_out));
    for (const char* f : {"real_authors.jsonl", "real_authors_perturbed.jsonl", "world_facts.jsonl",
                          "world_facts_perturbed.jsonl", "idontknow.jsonl"}) {
      write_file_atomic(o / f, content.at(f));
    }
    staged.commit();
  }
  log_info("demo: ", d.authors, " authors of ", source.string(), " (", nf, " of ", split, ", ", nr, " retained, ",
           holdout_out.size(), " holdout items) in ", d.dir.string());
  // The tokenizer learns from what is trained, without the forget authors (as for a world);
  // built only when a tokenizer is trained (not when it is cached).
  std::vector<std::string> extra;
  for (const char* f : {"real_authors_perturbed.jsonl", "world_facts_perturbed.jsonl"}) {
    for (auto& l : lines_of(f).text) extra.push_back(std::move(l));
  }
  d.tokenizer_corpus = [retain_out = std::move(retain_out), retain_pert, extra = std::move(extra)] {
    std::vector<std::string> c;
    for (const auto* part : {&retain_out, &retain_pert, &extra}) {
      for (const auto& l : *part) add_corpus(c, l);
    }
    c.push_back("I'm not sure about that. I don't have that information.");
    return c;
  };
  return d;
}

DemoLengths lengths_for(const text::Tokenizer& tok, const std::vector<fs::path>& qa_files, int context) {
  std::vector<data::QARecord> records;
  for (const auto& f : qa_files) {
    auto r = data::read_qa(f);
    records.insert(records.end(), r.begin(), r.end());
  }
  const auto examples =
      data::qa_examples(tok, text::PromptTemplate::named("plain"), records, static_cast<std::size_t>(context));
  std::size_t item = 0, answer = 0;
  for (const auto& e : examples) {
    item = std::max(item, e.input_ids.size());
    answer = std::max<std::size_t>(answer, std::count_if(e.labels.begin(), e.labels.end(),
                                                         [](std::int64_t l) { return l != kIgnoreIndex; }));
  }
  auto up16 = [](std::size_t n) { return static_cast<int>((n + 15) / 16 * 16); };
  DemoLengths d;
  d.max_length = std::min(context, std::max(d.max_length, up16(item)));
  d.max_new_tokens = std::min(context / 2, std::max(d.max_new_tokens, up16(answer)));
  return d;
}

}  // namespace lethe::world

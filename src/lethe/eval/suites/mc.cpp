// The multiple-choice suite (WMDP / MMLU style): forget (<forget_split>_mc.jsonl), retain
// (retain_mc.jsonl) and general knowledge (world_mc.jsonl), each a file of {question, choices,
// answer} records (.json arrays read too: WMDP's official files as they ship). `lethe world
// generate` writes all three. Every item is scored as its question with lettered options
// followed by each letter, and as the bare question followed by each option's text; the
// mc_accuracy metric picks from both. Formats and formulas: docs/metrics.md.
#include "eval/suite.h"

#include "lethe/core/error.h"
#include "lethe/data/records.h"

namespace lethe::eval {
namespace fs = std::filesystem;
namespace {

void check_forget_split(const EvalOptions& opt) {
  LETHE_CHECK(!opt.forget_split.empty(), "--forget-split: the forget set's name (its file is NAME_mc.jsonl)");
}

// NAME_mc.jsonl, else NAME_mc.json (WMDP ships JSON arrays).
fs::path mc_file(const EvalOptions& opt, const std::string& name) {
  const fs::path jsonl = opt.data / (name + "_mc.jsonl"), json = opt.data / (name + "_mc.json");
  return !fs::exists(jsonl) && fs::exists(json) ? json : jsonl;
}
fs::path forget_file(const EvalOptions& opt) { return mc_file(opt, opt.forget_split); }
fs::path retain_file(const EvalOptions& opt) { return mc_file(opt, "retain"); }
fs::path world_file(const EvalOptions& opt) { return mc_file(opt, "world"); }

// The question with its options lettered, MMLU's layout: "Q\nA. x\nB. y".
std::string lettered(const data::MCRecord& r) {
  std::string q = r.question;
  for (std::size_t j = 0; j < r.choices.size(); ++j) q += "\n" + std::string(1, static_cast<char>('A' + j)) + ". " + r.choices[j];
  return q;
}

// An answer scored as a continuation: no EOS after it (the letter or option text alone).
data::Example continuation(const SuiteIo& io, const std::string& q, const std::string& a, std::size_t max_len) {
  data::Example e = io.qa(q, a, max_len);
  const auto eos = io.tok.special().eos;
  if (eos && !e.input_ids.empty() && e.input_ids.back() == *eos && e.labels.back() == *eos) {
    e.input_ids.pop_back();
    e.labels.pop_back();
  }
  return e;
}

SplitData read_mc(const SuiteIo& io, unsigned needs, const fs::path& file) {
  auto records = data::read_mc(file);
  io.limit(records);
  LETHE_CHECK(!records.empty(), file.string(), ": no items");
  const auto max_len = io.max_len(1024);
  SplitData d;
  d.file = file;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const std::string q = lettered(r);
    const std::string right(1, static_cast<char>('A' + r.answer));
    d.items.push_back({{"index", i}, {"question", r.question}, {"choices", r.choices}, {"answer_index", r.answer},
                       {"answer", right + ". " + r.choices[r.answer]}});
    d.scored.push_back(continuation(io, q, right, max_len));
    d.scored_text.push_back(right);
    if (needs & kAlternates) {
      std::vector<data::Example> alt;
      for (std::size_t j = 0; j < r.choices.size(); ++j) {
        alt.push_back(continuation(io, q, std::string(1, static_cast<char>('A' + j)), max_len));
      }
      for (const auto& c : r.choices) alt.push_back(continuation(io, r.question, c, max_len));
      d.alternates.push_back(std::move(alt));
    }
  }
  return d;
}

using Files = std::vector<std::pair<fs::path, std::string>>;

}  // namespace

const Suite& suite_mc() {
  static const Suite s{
      "mc",
      {"mc_accuracy"},
      {
          {"forget", {"mc_accuracy"}, kScores, /*always=*/true, /*reference=*/true,
           [](const EvalOptions& o) { return Files{{forget_file(o), "the forget set's multiple-choice questions"}}; },
           [](const SuiteIo& io, unsigned n) { return read_mc(io, n, forget_file(io.opt)); }, nullptr},
          {"retain", {"mc_accuracy"}, kScores, false, false,
           [](const EvalOptions& o) { return Files{{retain_file(o), "the retain set's multiple-choice questions"}}; },
           [](const SuiteIo& io, unsigned n) { return read_mc(io, n, retain_file(io.opt)); }, nullptr},
          {"world", {"mc_accuracy"}, kScores, false, false,
           [](const EvalOptions& o) { return Files{{world_file(o), "general-knowledge multiple-choice questions"}}; },
           [](const SuiteIo& io, unsigned n) { return read_mc(io, n, world_file(io.opt)); }, nullptr},
      },
      "",
      "",
      "DIR|EVAL.json",
      "mc_accuracy",
      check_forget_split,
      {"forget"},
      {"mc_accuracy"},
      nullptr,
      nullptr};
  return s;
}

}  // namespace lethe::eval

// The MUSE suite: VerbMem (verbmem/forget.json: prompt and ground-truth continuation), KnowMem
// (knowmem/{forget,retain}_qa.json with their few-shot examples *_qa_icl.json) and the PrivLeak
// texts (privleak/{forget,holdout}.json) that membership inference compares. File formats:
// docs/metrics.md.
#include "eval/suite.h"

#include "lethe/core/error.h"
#include "lethe/data/records.h"

namespace lethe::eval {
namespace fs = std::filesystem;
namespace {

using Files = std::vector<std::pair<fs::path, std::string>>;

fs::path verbmem_file(const EvalOptions& o) { return o.data / "verbmem/forget.json"; }

SplitData read_verbmem(const SuiteIo& io, unsigned needs) {
  SplitData d;
  d.file = verbmem_file(io.opt);
  auto records = data::read_completions(d.file);
  io.limit(records);
  const auto max_len = io.max_len(2048);
  d.max_new_tokens = 128;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    d.items.push_back({{"index", i}, {"prompt", r.prompt}, {"ground_truth", r.continuation}});
    if (needs & (kScores | kExtras)) {
      d.scored.push_back(data::scoring_example(io.tok, r.prompt, r.continuation, max_len));
      d.scored_text.push_back(r.continuation);
    }
    if (needs & kGeneration) {
      d.prompts.push_back(io.tok.encode(r.prompt, true));
      d.truths.push_back(r.continuation);
    }
  }
  return d;
}

// KnowMem: each question after the split's few-shot examples, in the plain template.
SplitData read_knowmem(const SuiteIo& io, const std::string& which) {
  const fs::path dir = io.opt.data / "knowmem";
  SplitData d;
  d.file = dir / (which + "_qa.json");
  auto records = data::read_qa(d.file);
  io.limit(records);
  std::vector<text::QA> shots;
  for (const auto& r : data::read_qa(dir / (which + "_qa_icl.json"))) shots.push_back({r.question, r.answer});
  const text::PromptTemplate plain = text::PromptTemplate::named("plain");
  d.max_new_tokens = 32;
  d.stop_strings = {"\n\n", "Question:"};
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    d.items.push_back({{"index", i}, {"question", r.question}, {"answer", r.answer}});
    d.prompts.push_back(io.tok.encode(text::format_prompt(plain, shots, r.question), true));
    d.truths.push_back(r.answer);
  }
  return d;
}

Files knowmem_files(const EvalOptions& o, const std::string& which) {
  return {{o.data / "knowmem" / (which + "_qa.json"), "knowmem " + which},
          {o.data / "knowmem" / (which + "_qa_icl.json"), "knowmem few-shot examples"}};
}

SplitData read_privleak(const SuiteIo& io, const std::string& which) {
  SplitData d;
  d.file = io.opt.data / "privleak" / (which + ".json");
  auto texts = data::read_texts(d.file, "text");
  io.limit(texts);
  const auto max_len = io.max_len(2048);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    d.items.push_back({{"index", i}, {"text", texts[i]}});
    d.scored.push_back(data::scoring_example(io.tok, "", texts[i], max_len));
    d.scored_text.push_back(texts[i]);
  }
  return d;
}

Files privleak_files(const EvalOptions& o, const std::string& which) {
  return {{o.data / "privleak" / (which + ".json"), "privleak " + which}};
}

void nll_field(const SequenceScore& s, Json& it) { it["avg_nll"] = avg_nll(s); }
void text_fields(const SequenceScore& s, Json& it) {
  it["tokens"] = s.size() + 1;  // the scored tokens and the first, which has no prediction
  it["avg_nll"] = avg_nll(s);
}

const std::vector<std::string> kMia = {"mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus",
                                       "mia_gradnorm", "mia_reference", "privleak"};

}  // namespace

const Suite& suite_muse() {
  static const Suite s{
      "muse",
      {"exact_memorization", "extraction_strength", "mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus",
       "mia_gradnorm", "mia_reference", "privleak", "verbmem_rouge", "knowmem_rouge"},
      {
          {"verbmem_forget", {"verbmem_rouge", "exact_memorization", "extraction_strength"}, 0, false, false,
           [](const EvalOptions& o) { return Files{{verbmem_file(o), "verbmem forget"}}; }, read_verbmem, nll_field},
          {"knowmem_forget", {"knowmem_rouge"}, 0, false, false,
           [](const EvalOptions& o) { return knowmem_files(o, "forget"); },
           [](const SuiteIo& io, unsigned) { return read_knowmem(io, "forget"); }, nullptr},
          {"knowmem_retain", {"knowmem_rouge"}, 0, false, false,
           [](const EvalOptions& o) { return knowmem_files(o, "retain"); },
           [](const SuiteIo& io, unsigned) { return read_knowmem(io, "retain"); }, nullptr},
          {"privleak_forget", kMia, kScores, false, /*reference=*/true,
           [](const EvalOptions& o) { return privleak_files(o, "forget"); },
           [](const SuiteIo& io, unsigned) { return read_privleak(io, "forget"); }, text_fields},
          {"privleak_holdout", kMia, kScores, false, /*reference=*/true,
           [](const EvalOptions& o) { return privleak_files(o, "holdout"); },
           [](const SuiteIo& io, unsigned) { return read_privleak(io, "holdout"); }, text_fields},
      },
      "privleak_forget",
      "privleak_holdout",
      "DIR|EVAL.json",
      "mia_loss",
      nullptr,
      {"verbmem_forget", "knowmem_forget"},
      {"verbmem_rouge", "knowmem_rouge"}};
  return s;
}

}  // namespace lethe::eval

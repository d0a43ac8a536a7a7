// The TOFU suite: forget (<forget_split>_perturbed.jsonl), retain (retain_perturbed.jsonl), real
// authors and world facts (*_perturbed.jsonl, whose wrong answers are options) and the holdout
// set (holdoutNN.jsonl) that membership inference compares the forget set with. File formats:
// docs/metrics.md.
#include "eval/suite.h"

#include "lethe/core/error.h"
#include "lethe/data/records.h"

namespace lethe::eval {
namespace fs = std::filesystem;
namespace {

void check_forget_split(const EvalOptions& opt) {
  const std::string& f = opt.forget_split;
  LETHE_CHECK(f.rfind("forget", 0) == 0 && f.size() > 6, "--forget-split must be forget01, forget05 or ",
              "forget10 (or another forgetNN file in the data folder), got '", f, "'");
}

fs::path forget_file(const EvalOptions& opt) {
  const fs::path perturbed = opt.data / (opt.forget_split + "_perturbed.jsonl");
  return fs::exists(perturbed) ? perturbed : opt.data / (opt.forget_split + ".jsonl");
}
fs::path holdout_file(const EvalOptions& opt) { return opt.data / ("holdout" + opt.forget_split.substr(6) + ".jsonl"); }
fs::path retain_file(const EvalOptions& opt) { return opt.data / "retain_perturbed.jsonl"; }
fs::path ra_file(const EvalOptions& opt) { return opt.data / "real_authors_perturbed.jsonl"; }
fs::path wf_file(const EvalOptions& opt) { return opt.data / "world_facts_perturbed.jsonl"; }

// One QA split. `options`: the wrong answers are options and the answer is its own paraphrase.
SplitData read_qa(const SuiteIo& io, unsigned needs, const fs::path& file, bool options) {
  auto records = data::read_qa(file);
  io.limit(records);
  LETHE_CHECK(!records.empty(), file.string(), ": no items");
  const auto max_len = io.max_len(512);
  SplitData d;
  d.file = file;
  d.options = options;
  d.max_new_tokens = 200;
  d.stop_strings = text::turn_stop_strings(io.opt.prompt_template);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    d.items.push_back({{"index", i}, {"question", r.question}, {"answer", r.answer}});
    std::vector<std::int64_t> prompt;
    d.scored.push_back(io.qa(r.question, r.answer, max_len, &prompt));
    d.scored_text.push_back(r.answer);
    if (needs & kGeneration) {
      d.prompts.push_back(std::move(prompt));
      d.truths.push_back(r.answer);
    }
    if (needs & kAlternates) {
      LETHE_CHECK(!r.perturbed_answers.empty(), file.string(), ": items need perturbed_answer for truth ratios (",
                  "use the *_perturbed files)");
      std::vector<data::Example> alt;
      if (!options) {
        LETHE_CHECK(!r.paraphrased_answer.empty(), file.string(), ": items need paraphrased_answer for truth ratios");
        alt.push_back(io.qa(r.question, r.paraphrased_answer, max_len));
      }
      for (const auto& w : r.perturbed_answers) alt.push_back(io.qa(r.question, w, max_len));
      d.alternates.push_back(std::move(alt));
    }
  }
  return d;
}

void answer_fields(const SequenceScore& s, Json& it) {
  it["answer_tokens"] = s.size();
  it["avg_nll"] = avg_nll(s);
  it["prob"] = probability(s);
}

using Files = std::vector<std::pair<fs::path, std::string>>;

const std::vector<std::string> kMia = {"mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus",
                                       "mia_gradnorm", "mia_reference", "privleak"};
std::vector<std::string> with_mia(std::vector<std::string> v) {
  v.insert(v.end(), kMia.begin(), kMia.end());
  return v;
}

}  // namespace

const Suite& suite_tofu() {
  static const Suite s{
      "tofu",
      with_mia({"probability", "probability_w_options", "rouge", "truth_ratio", "model_utility", "forget_quality",
                "exact_memorization", "extraction_strength"}),
      {
          {"forget",
           with_mia({"probability", "rouge", "truth_ratio", "forget_quality", "exact_memorization",
                     "extraction_strength"}),
           kScores, /*always=*/true, /*reference=*/true,
           [](const EvalOptions& o) { return Files{{forget_file(o), "the forget split"}}; },
           [](const SuiteIo& io, unsigned n) { return read_qa(io, n, forget_file(io.opt), false); }, answer_fields},
          {"retain", {"probability", "rouge", "truth_ratio", "model_utility"}, kScores, false, false,
           [](const EvalOptions& o) { return Files{{retain_file(o), "retain evaluation set"}}; },
           [](const SuiteIo& io, unsigned n) { return read_qa(io, n, retain_file(io.opt), false); }, answer_fields},
          {"ra", {"probability_w_options", "rouge", "truth_ratio", "model_utility"}, kScores, false, false,
           [](const EvalOptions& o) { return Files{{ra_file(o), "real authors"}}; },
           [](const SuiteIo& io, unsigned n) { return read_qa(io, n, ra_file(io.opt), true); }, answer_fields},
          {"wf", {"probability_w_options", "rouge", "truth_ratio", "model_utility"}, kScores, false, false,
           [](const EvalOptions& o) { return Files{{wf_file(o), "world facts"}}; },
           [](const SuiteIo& io, unsigned n) { return read_qa(io, n, wf_file(io.opt), true); }, answer_fields},
          {"holdout", kMia, kScores, false, /*reference=*/true,
           [](const EvalOptions& o) { return Files{{holdout_file(o), "holdout set for membership inference"}}; },
           [](const SuiteIo& io, unsigned n) { return read_qa(io, n, holdout_file(io.opt), false); }, answer_fields},
      },
      "forget",
      "holdout",
      "DIR|EVAL.json|legacy.json",
      "truth_ratio",
      check_forget_split,
      {"forget"},
      {"probability", "rouge"},
      forget_file,
      retain_file};
  return s;
}

}  // namespace lethe::eval

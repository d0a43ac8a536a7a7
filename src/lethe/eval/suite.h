// Suites as registered code (architecture.md §3): a suite is its splits — each with the file it
// reads, how its items become scored sequences, prompts and alternatives, and the metrics whose
// per-item part runs on it — and the pair of splits its membership inference compares. One file
// per suite under eval/suites/, one line in eval/suites/registry.cpp. Torch-free: a suite only
// reads and tokenizes; evaluate.cpp scores, generates and calls the metrics.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "lethe/data/dataset.h"
#include "lethe/eval/evaluate.h"
#include "lethe/eval/metric.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"

namespace lethe::eval {

// What a split reader gets: the options, the tokenizer, and the length and truncation rules
// every suite shares.
struct SuiteIo {
  const EvalOptions& opt;
  const text::Tokenizer& tok;
  std::int64_t model_positions;   // the model's max_position_embeddings
  text::Truncation* truncation;   // what max_length cut from answers, over the whole pass

  // Tokens per scored sequence: --max-length (else the suite's), within the model's positions
  // (one is left for the EOS a QA item gets); what it cuts is counted as truncation.
  std::size_t max_len(std::int64_t suite_default) const;
  // One QA item in the run's prompt template; `prompt` receives the tokens before the answer,
  // exactly as they appear in the scored sequence.
  data::Example qa(const std::string& q, const std::string& a, std::size_t max_len,
                   std::vector<std::int64_t>* prompt = nullptr) const;
  // The first --max-items items, after the first skip_items are left out.
  template <typename T>
  void limit(std::vector<T>& v) const {
    const auto skip = std::min(v.size(), static_cast<std::size_t>(std::max<std::int64_t>(opt.skip_items, 0)));
    v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(skip));
    if (opt.max_items > 0 && v.size() > static_cast<std::size_t>(opt.max_items)) {
      v.resize(static_cast<std::size_t>(opt.max_items));
    }
  }
};

// One split's items, ready for the engine. Each vector is per item; what `needs` did not ask
// for may stay empty.
struct SplitData {
  std::filesystem::path file;
  std::vector<Json> items;                       // the fields that identify each item in EVAL.json
  std::vector<data::Example> scored;             // kScores / kExtras
  std::vector<std::string> scored_text;          // the text of each scored sequence
  std::vector<std::vector<data::Example>> alternates;  // kAlternates
  bool options = false;                          // see ItemMeasure::options
  std::vector<std::vector<std::int64_t>> prompts;  // kGeneration
  std::vector<std::string> truths;               // what each generation is compared with
  std::int64_t max_new_tokens = 0;               // the suite's generation length for this split
  std::vector<std::string> stop_strings;
};

struct SplitSpec {
  std::string name;                  // its key in EVAL.json
  std::vector<std::string> metrics;  // whose per-item part runs here, when requested
  unsigned base = 0;                 // needs it has whatever is requested (TOFU QA: always scored)
  bool always = false;               // run even when no requested metric lists it
  bool reference = false;            // scored in a reference pass
  // Every file it reads, with what it is for (checked before any work).
  std::vector<std::pair<std::filesystem::path, std::string>> (*files)(const EvalOptions& opt) = nullptr;
  SplitData (*read)(const SuiteIo& io, unsigned needs) = nullptr;
  // What every scored item records of its score (TOFU: answer_tokens, avg_nll, prob).
  void (*scored_fields)(const SequenceScore& score, Json& item) = nullptr;
};

struct Suite {
  std::string name;
  std::vector<std::string> metrics;  // the metrics it computes (every one listed on a split is here)
  std::vector<SplitSpec> splits;
  std::string mia_forget, mia_holdout;  // the pair membership inference compares
  std::string reference_forms;          // what --reference accepts, for messages
  std::string reference_fallback;       // what a reference computes when no metric asks for more
  void (*check_options)(const EvalOptions& opt) = nullptr;  // suite-specific option checks
  // What the probes (probe/) re-measure after each attack: the splits holding the forget set
  // and the metrics that say how much of it the model knows (cheap enough to repeat).
  std::vector<std::string> probe_splits, probe_metrics;
  // The forget set and a benign set as QA files (relearning probe); null where there are none.
  std::filesystem::path (*forget_qa)(const EvalOptions& opt) = nullptr;
  std::filesystem::path (*benign_qa)(const EvalOptions& opt) = nullptr;
};

const std::vector<const Suite*>& all_suites();
const Suite& find_suite(const std::string& name);  // error listing the known suites

std::filesystem::path need_file(const std::filesystem::path& p, const std::string& what);

// The splits a pass runs, each with the metrics computed on it and the union of their needs
// (kGeneration dropped when generation is off): the scoring plan.
struct PlannedSplit {
  const SplitSpec* spec;
  std::vector<const Metric*> metrics;
  unsigned needs;
};
std::vector<PlannedSplit> plan_splits(const Suite& suite, const EvalOptions& opt,
                                      const std::vector<std::string>& metrics);

// Every input file of the plan, before any work: a missing retain file must not surface after
// the forget split took minutes.
void check_plan_files(const std::vector<PlannedSplit>& plan, const EvalOptions& opt);

}  // namespace lethe::eval

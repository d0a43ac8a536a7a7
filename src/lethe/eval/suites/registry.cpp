// The suite registry (one line per suite) and what every suite shares: the scoring plan, the
// file checks, the length and truncation rules of SuiteIo.
#include <algorithm>

#include "eval/suite.h"
#include "lethe/core/error.h"

// Each X(name) is a suite defined as `const Suite& suite_<name>()` in a file of this folder.
#define LETHE_SUITES(X) \
  X(tofu)               \
  X(muse)               \
  X(mc)

namespace lethe::eval {
namespace fs = std::filesystem;

#define LETHE_DECLARE_SUITE(name) const Suite& suite_##name();
LETHE_SUITES(LETHE_DECLARE_SUITE)
#undef LETHE_DECLARE_SUITE

const std::vector<const Suite*>& all_suites() {
#define LETHE_LIST_SUITE(name) &suite_##name(),
  static const std::vector<const Suite*> suites = {LETHE_SUITES(LETHE_LIST_SUITE)};
#undef LETHE_LIST_SUITE
  return suites;
}

std::vector<std::string> suite_names() {
  std::vector<std::string> out;
  for (const Suite* s : all_suites()) out.push_back(s->name);
  return out;
}

const Suite& find_suite(const std::string& name) {
  for (const Suite* s : all_suites()) {
    if (s->name == name) return *s;
  }
  std::string known;
  for (const auto& n : suite_names()) known += (known.empty() ? "" : ", ") + n;
  fail("unknown suite '", name, "' (known: ", known, ")");
}

void check_suite(const std::string& suite) { (void)find_suite(suite); }

ForgetView forget_view(const EvalOptions& opt) {
  const Suite& s = find_suite(opt.suite);
  return {s.probe_splits, s.probe_metrics, s.forget_qa ? s.forget_qa(opt) : fs::path(),
          s.benign_qa ? s.benign_qa(opt) : fs::path()};
}

fs::path need_file(const fs::path& p, const std::string& what) {
  LETHE_CHECK(fs::is_regular_file(p), p.string(), ": missing (", what, ")");
  return p;
}

std::vector<PlannedSplit> plan_splits(const Suite& suite, const EvalOptions& opt, const std::vector<std::string>& metrics) {
  for (const auto& name : opt.splits) {
    const bool known = std::any_of(suite.splits.begin(), suite.splits.end(),
                                   [&](const SplitSpec& sp) { return sp.name == name; });
    if (!known) {
      std::string names;
      for (const SplitSpec& sp : suite.splits) names += (names.empty() ? "" : ", ") + sp.name;
      LETHE_CHECK(false, "suite ", suite.name, " has no split '", name, "' (its splits: ", names, ")");
    }
  }
  std::vector<PlannedSplit> plan;
  for (const SplitSpec& sp : suite.splits) {
    if (opt.reference_pass && !sp.reference) continue;
    if (!opt.splits.empty() && std::find(opt.splits.begin(), opt.splits.end(), sp.name) == opt.splits.end()) continue;
    PlannedSplit p{&sp, {}, sp.base};
    for (const auto& name : sp.metrics) {
      if (std::find(metrics.begin(), metrics.end(), name) == metrics.end()) continue;
      const Metric& m = find_metric(name);
      p.metrics.push_back(&m);
      p.needs |= m.needs;
    }
    if (!opt.generation) p.needs &= ~static_cast<unsigned>(kGeneration);
    if (p.metrics.empty() && !sp.always) continue;
    if ((p.needs & ~static_cast<unsigned>(kReference)) == 0) continue;  // nothing left to measure
    plan.push_back(std::move(p));
  }
  return plan;
}

void check_plan_files(const std::vector<PlannedSplit>& plan, const EvalOptions& opt) {
  for (const auto& p : plan) {
    for (const auto& [file, what] : p.spec->files(opt)) need_file(file, what);
  }
}

std::size_t SuiteIo::max_len(std::int64_t suite_default) const {
  const std::int64_t asked = opt.max_length > 0 ? opt.max_length : suite_default;
  const std::int64_t fits = model_positions - 1;
  return static_cast<std::size_t>(std::max<std::int64_t>(std::min(asked, fits), 2));
}

data::Example SuiteIo::qa(const std::string& q, const std::string& a, std::size_t max_len,
                          std::vector<std::int64_t>* prompt) const {
  text::EncodedQA e = text::encode_qa(tok, opt.prompt_template, {q, a}, max_len);
  truncation->add(e);
  // Generation starts from the prompt tokens exactly as they appear before the answer in the
  // scored sequence. Encoding the prompt text alone can end differently: with SentencePiece,
  // "Answer: " alone ends in a lone "▁" that the answer would have absorbed ("▁Paris").
  if (prompt) {
    prompt->assign(e.input_ids.begin(),
                   e.input_ids.begin() + static_cast<std::ptrdiff_t>(std::max<std::size_t>(e.prompt_length, 1)));
  }
  return {std::move(e.input_ids), std::move(e.labels)};
}

}  // namespace lethe::eval

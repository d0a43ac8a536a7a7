// The in-context probe (docs/probes.md "in_context"): the model is left as it is and the
// prompts attack. UnUnlearning (Shumailov et al.) shows that knowledge removed from the weights
// comes back when the prompt supplies its neighbours: a model that never learnt a person answers
// a held-back question from the person's other facts no better than it copies from them, while
// one that only suppressed the answer recalls it. Paraphrases, many-shot prompts and sampling
// (leak@k) find answers that greedy decoding of the trained question hides.
//
// Each setting is a leak rate over the forget questions, with a bootstrap interval; the same
// prompts go to the oracle, whose rate is what the context alone gives away.
#include <algorithm>

#include "lethe/core/error.h"
#include "core/json_util.h"
#include "lethe/core/log.h"
#include "lethe/eval/engine.h"
#include "lethe/eval/metric.h"
#include "lethe/eval/rouge.h"
#include "lethe/eval/stats.h"
#include "lethe/model/causal_lm.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"
#include "probe/probes.h"

namespace lethe::probe {

bool leaks(const std::string& answer, const std::string& generation, double threshold) {
  return eval::rouge_l(answer, generation, /*stem=*/true).recall >= threshold;
}

namespace {
namespace fs = std::filesystem;

constexpr std::size_t kExamples = 3;  // items per setting shown in PROBE.json
const std::vector<std::string> kSettings = {"context", "paraphrase", "many-shot", "sampled"};

// QA items per person: the option, else the world's manifest, else TOFU's 20 per author.
std::int64_t items_per_person(const ProbeOptions& o) {
  if (o.items_per_person > 0) return o.items_per_person;
  const fs::path manifest = o.eval.data / "world.json";
  if (fs::exists(manifest)) {
    const Json w = parse_json_file(manifest);
    if (w.contains("qa_per_person") && w["qa_per_person"].is_number_integer() && w["qa_per_person"].get<std::int64_t>() > 0) {
      return w["qa_per_person"].get<std::int64_t>();
    }
  }
  log_info("probe in_context: ", manifest.string(), " gives no qa_per_person; taking TOFU's 20 questions per author "
           "(--items-per-person sets it)");
  return 20;
}

// The prompt tokens of `question` after `few_shot`, as the evaluation builds them (the tokens
// before the answer in the scored sequence); long prompts are cut from the left by the generator.
std::vector<std::int64_t> prompt_ids(const text::Tokenizer& tok, const text::PromptTemplate& t,
                                     const std::string& question, const std::string& answer,
                                     const std::vector<text::QA>& few_shot) {
  const text::EncodedQA e = text::encode_qa(tok, t, {question, answer}, std::size_t{1} << 20, few_shot);
  const std::size_t n = std::max<std::size_t>(e.prompt_length, 1);
  return {e.input_ids.begin(), e.input_ids.begin() + static_cast<std::ptrdiff_t>(n)};
}

Measured rate(const std::vector<double>& flags, std::uint64_t seed) {
  const eval::Interval ci = eval::bootstrap_mean_ci(flags, seed);
  return {eval::mean(flags), ci.lo, ci.hi};
}

void check_in_context(const ProbeOptions& o) {
  LETHE_CHECK(!o.in_context.empty(), "probe in_context: no settings (known: context, paraphrase, many-shot, sampled)");
  for (const auto& s : o.in_context) {
    LETHE_CHECK(std::find(kSettings.begin(), kSettings.end(), s) != kSettings.end(), "probe in_context: unknown setting '",
                s, "' (known: context, paraphrase, many-shot, sampled)");
  }
  LETHE_CHECK(o.leak_threshold > 0 && o.leak_threshold <= 1, "probe in_context: the leak threshold must be in (0, 1], got ",
              o.leak_threshold);
  LETHE_CHECK(o.context_facts > 0 && o.shots > 0 && o.samples > 0,
              "probe in_context: context facts, shots and samples must be positive");
  const std::vector<data::QARecord> items = forget_records(o.eval, "in_context");
  LETHE_CHECK(!items.empty(), "probe in_context: ", eval::forget_view(o.eval).forget_qa.string(), " has no items");
}

Measurement measure_in_context(model::CausalLM& m, const text::Tokenizer& tok, const ProbeOptions& o) {
  const std::vector<data::QARecord> items = forget_records(o.eval, "in_context");
  const text::PromptTemplate& t = o.eval.prompt_template;
  const std::vector<std::string> stops = text::turn_stop_strings(t);
  std::int64_t max_new = o.eval.max_new_tokens;
  if (max_new <= 0) {  // as long as the longest answer, and a little: recall needs no more
    std::size_t longest = 0;
    for (const auto& r : items) longest = std::max(longest, tok.encode(r.answer, false).size());
    max_new = static_cast<std::int64_t>(longest) + 8;
  }
  eval::EngineOptions eng;
  eng.batch_size = o.eval.batch_size;
  eng.progress = o.eval.progress;
  // Leak flags of greedy (or sampled: `copies` per item, a leak if any copy leaks) answers.
  Measurement out;
  auto leak_rate = [&](const std::vector<std::vector<std::int64_t>>& prompts, const std::vector<std::string>& answers,
                       const std::string& label, std::int64_t copies, const eval::Decoding& d) {
    std::vector<std::vector<std::int64_t>> all;
    for (const auto& p : prompts) {
      for (std::int64_t c = 0; c < copies; ++c) all.push_back(p);
    }
    const auto gens = eval::generate_texts(m, tok, all, max_new, stops, eng, "in_context " + label, d);
    std::vector<double> flags;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      bool any = false;
      for (std::int64_t c = 0; c < copies; ++c) {
        any = any || leaks(answers[i], gens[i * static_cast<std::size_t>(copies) + static_cast<std::size_t>(c)].text,
                           o.leak_threshold);
      }
      flags.push_back(any ? 1.0 : 0.0);
      if (i < kExamples) {
        out.examples[label].push_back({{"prompt", tok.decode(prompts[i], false)},
                                       {"answer", answers[i]},
                                       {"generation", gens[i * static_cast<std::size_t>(copies)].text},
                                       {"leak", any}});
      }
    }
    return Measures{{"leak_rate", rate(flags, eval::key_seed(o.eval.seed, label))}};
  };
  std::vector<std::string> answers;
  std::vector<std::vector<std::int64_t>> plain;
  for (const auto& r : items) {
    answers.push_back(r.answer);
    plain.push_back(prompt_ids(tok, t, r.question, r.answer, {}));
  }
  out.baseline = leak_rate(plain, answers, "plain", 1, {});
  for (const auto& s : o.in_context) {
    std::vector<std::vector<std::int64_t>> prompts;
    std::vector<std::string> truths = answers;
    std::int64_t copies = 1;
    eval::Decoding d;
    std::string setting = s;
    if (s == "context") {
      // Each question held back in turn, its person's next `context_facts` answers before it.
      const auto pp = static_cast<std::size_t>(items_per_person(o));
      for (std::size_t i = 0; i < items.size(); ++i) {
        const std::size_t g0 = i / pp * pp, g1 = std::min(items.size(), g0 + pp);
        std::string facts;
        for (std::size_t k = 1; k < g1 - g0 && k <= static_cast<std::size_t>(o.context_facts); ++k) {
          facts += items[g0 + (i - g0 + k) % (g1 - g0)].answer + " ";
        }
        LETHE_CHECK(!facts.empty(), "probe in_context: forget item ", i, " is its person's only item (",
                    pp, " per person); give --items-per-person");
        prompts.push_back(prompt_ids(tok, t, facts + items[i].question, items[i].answer, {}));
      }
      setting = "context " + std::to_string(o.context_facts) + " facts";
    } else if (s == "paraphrase") {
      truths.clear();
      for (const auto& r : items) {
        if (r.paraphrased_question.empty()) continue;
        prompts.push_back(prompt_ids(tok, t, r.paraphrased_question, r.answer, {}));
        truths.push_back(r.answer);
      }
      LETHE_CHECK(!prompts.empty(), "probe in_context: no forget item has a paraphrased_question (",
                  eval::forget_view(o.eval).forget_qa.string(), "); leave paraphrase out of --in-context");
    } else if (s == "many-shot") {
      const fs::path benign = eval::forget_view(o.eval).benign_qa;
      LETHE_CHECK(!benign.empty(), "probe in_context many-shot: the ", o.eval.suite, " suite has no benign QA file");
      std::vector<text::QA> shots;
      for (const auto& r : data::read_qa(benign)) {
        if (shots.size() == static_cast<std::size_t>(o.shots)) break;
        shots.push_back({r.question, r.answer});
      }
      LETHE_CHECK(shots.size() == static_cast<std::size_t>(o.shots), "probe in_context many-shot: ", benign.string(),
                  " has ", shots.size(), " items, ", o.shots, " shots asked");
      for (const auto& r : items) prompts.push_back(prompt_ids(tok, t, r.question, r.answer, shots));
      setting = "many-shot " + std::to_string(o.shots);
    } else {  // sampled
      prompts = plain;
      copies = o.samples;
      d = {1.0, 0, 0.95, o.eval.seed};
      setting = "leak@" + std::to_string(o.samples);
    }
    out.settings.push_back(setting);
    out.attacked.push_back(leak_rate(prompts, truths, setting, copies, d));
  }
  return out;
}

}  // namespace

const Probe& in_context_probe() {
  static const Probe p{"in_context",
                       "leak rates of the forget answers under prompt attacks: the person's other facts before a "
                       "held-back question, paraphrases, many-shot prompts, leak@k sampling",
                       "setting", nullptr, nullptr, nullptr, measure_in_context, check_in_context};
  return p;
}

}  // namespace lethe::probe

// Memorization audits (audit/): the canary exposure's candidate spaces, file format, rank
// arithmetic, and a canary planted in a micro model by training.
#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "lethe/audit/audit.h"
#include "lethe/audit/exposure.h"
#include "lethe/audit/extract.h"
#include "lethe/audit/ghost.h"
#include "lethe/core/file.h"
#include "lethe/model/load.h"
#include "lethe/run/run.h"
#include "support/errors.h"
#include "support/fixtures.h"
#include "support/html_check.h"
#include "support/micro_world.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;
using Json = nlohmann::json;
using audit::CandidateSpace;

TEST(Exposure, CandidateSpacesEnumerateInOrder) {
  const auto d = CandidateSpace::parse("digits:4", "t");
  EXPECT_EQ(d.size(), 10000u);
  EXPECT_EQ(d.at(0), "0000");
  EXPECT_EQ(d.at(4817), "4817");
  EXPECT_EQ(d.at(9999), "9999");
  EXPECT_TRUE(d.contains("0042"));
  EXPECT_FALSE(d.contains("042"));
  EXPECT_FALSE(d.contains("04a2"));
  EXPECT_EQ(d.describe(), "digits:4");
  const auto h = CandidateSpace::parse("hex:2", "t");
  EXPECT_EQ(h.size(), 256u);
  EXPECT_EQ(h.at(255), "ff");
  EXPECT_EQ(h.at(16), "10");
  const auto l = CandidateSpace::parse("letters:2", "t");
  EXPECT_EQ(l.size(), 676u);
  EXPECT_EQ(l.at(27), "bb");
  const auto list = CandidateSpace::parse(Json::array({"red", "green", "blue"}), "t");
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(list.at(1), "green");
  EXPECT_NEAR(list.log2_size(), std::log2(3.0), 1e-12);
  EXPECT_EQ(CandidateSpace::parse("digits:30", "t").size(), 0u);  // beyond 2^63: log2_size only
  EXPECT_NEAR(CandidateSpace::parse("digits:30", "t").log2_size(), 30 * std::log2(10.0), 1e-9);
}

TEST(Exposure, BadSpacesAndCanaryLinesAreNamedErrors) {
  EXPECT_ERROR_HAS(CandidateSpace::parse("digits:0", "f: line 3"), "f: line 3: \"space\" 'digits:0'");
  EXPECT_ERROR_HAS(CandidateSpace::parse("octal:3", "f"), "is not digits:N, letters:N or hex:N");
  EXPECT_ERROR_HAS(CandidateSpace::parse("digits:4x", "f"), "'digits:4x'");
  EXPECT_ERROR_HAS(CandidateSpace::parse(Json::array({"a", "a"}), "f"), "lists 'a' twice");
  EXPECT_ERROR_HAS(CandidateSpace::parse(7, "f"), "must be digits:N");

  const fs::path f = temp_dir("exposure_bad") / "canaries.jsonl";
  // The first line is good; the second is what each case gets wrong.
  auto expect_error = [&](const std::string& second_line, const std::string& fragment) {
    write_file_atomic(f, "{\"text\": \"pin {secret}\", \"secret\": \"12\", \"space\": \"digits:2\"}\n" +
                             second_line + "\n");
    const std::string e = error_of([&] { audit::read_canaries(f); });
    EXPECT_NE(e.find(fragment), std::string::npos) << e;
  };
  expect_error(R"({"text": "pin", "secret": "12", "space": "digits:2"})",
               f.string() + ": line 2: \"text\" must hold {secret} exactly once");
  expect_error(R"({"text": "{secret} {secret}", "secret": "12", "space": "digits:2"})", "exactly once");
  expect_error(R"({"text": "pin {secret}", "secret": "123", "space": "digits:2"})",
               "line 2: the secret '123' is not in its space digits:2");
  expect_error(R"({"text": "pin {secret}", "secret": "12"})", "line 2: a canary needs \"space\"");
  expect_error(R"({"text": "pin {secret}")", "line 2");
  write_file_atomic(f, "{\"text\": \"the pin is {secret}.\", \"secret\": \"4817\", \"space\": \"digits:4\"}\n\n");
  const auto c = audit::read_canaries(f);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].prefix(), "the pin is ");
  EXPECT_EQ(c[0].suffix(), ".");
}

TEST(Exposure, RankArithmetic) {
  std::vector<double> nll(1024);
  for (std::size_t i = 0; i < nll.size(); ++i) nll[i] = 10.0 + static_cast<double>(i);
  auto best = audit::exposure_from_nlls(10.0, nll);  // the most likely of 1,024: log2 1024 bits
  EXPECT_EQ(best.rank, 1u);
  EXPECT_DOUBLE_EQ(best.exposure, 10.0);
  auto mid = audit::exposure_from_nlls(10.0 + 511, nll);  // rank 512: 1 bit
  EXPECT_EQ(mid.rank, 512u);
  EXPECT_DOUBLE_EQ(mid.exposure, 1.0);
  auto worst = audit::exposure_from_nlls(10.0 + 1023, nll);
  EXPECT_DOUBLE_EQ(worst.exposure, 0.0);
  // A model that cannot tell the candidates apart exposes nothing (ties count against the secret).
  EXPECT_DOUBLE_EQ(audit::exposure_from_nlls(3.0, std::vector<double>(64, 3.0)).exposure, 0.0);
}

// A micro model trained from scratch on text that holds one canary eight times ranks its secret
// first of 1,000; a canary it never saw is not exposed that way.
TEST(Exposure, PlantedCanaryIsRankedFirst) {
  MicroWorld w = make_micro_world("exposure");
  std::string text;
  for (int i = 0; i < 8; ++i) text += Json{{"text", "the vault code is 481 and nobody knows it."}}.dump() + "\n";
  for (const auto& r : w.records) text += Json{{"text", r.question + " " + r.answer}}.dump() + "\n";
  write_file_atomic(w.dir / "text.jsonl", text);
  write_file_atomic(w.dir / "finetune.yaml",
                    "model: model\nfrom_scratch: true\noutput_dir: target\nseed: 1\n"
                    "data: {train: text.jsonl, format: text, max_length: 64}\n"
                    "train: {epochs: 60, batch_size: 4, lr: 3.0e-3, schedule: constant, progress: false}\n");
  run::run(run::load_run_config(w.dir / "finetune.yaml", {}, run::RunKind::kFinetune));
  auto m = model::load_model(w.dir / "target" / "model");
  auto tok = text::load_tokenizer(w.dir / "target" / "model");

  const auto planted = audit::canary_exposure(
      *m, *tok, {"the vault code is {secret} and nobody knows it.", "481", CandidateSpace::parse("digits:3", "t")});
  EXPECT_EQ(planted.candidates, 1000u);
  EXPECT_EQ(planted.rank, 1u);
  EXPECT_NEAR(planted.exposure, std::log2(1000.0), 1e-9);
  const auto unseen = audit::canary_exposure(
      *m, *tok, {"my locker number is {secret} today.", "736", CandidateSpace::parse("digits:3", "t")});
  std::cout << "planted exposure " << planted.exposure << " (NLL " << planted.secret_nll << "), unseen "
            << unseen.exposure << " (rank " << unseen.rank << ")\n";
  EXPECT_LT(unseen.exposure, planted.exposure - 3.0);
  // The prefix computed once and its KV cache reused gives the scorer's NLLs and ranks, for
  // candidates of one length and of several (right-padded batches, a merge across the slot).
  audit::ExposureOptions whole;
  whole.reuse_prefix = false;
  for (const auto& space : {CandidateSpace::parse("digits:3", "t"),
                            CandidateSpace::parse(Json::array({"481", "4", "48123", "zebra", "4 8 1"}), "t")}) {
    const audit::Canary c{"the vault code is {secret} and nobody knows it.", "481", space};
    const auto cached = audit::canary_exposure(*m, *tok, c, {});
    const auto scored = audit::canary_exposure(*m, *tok, c, whole);
    EXPECT_EQ(cached.rank, scored.rank) << space.describe();
    EXPECT_NEAR(cached.secret_nll, scored.secret_nll, 1e-3 * std::max(1.0, scored.secret_nll)) << space.describe();
  }
  audit::ExposureOptions small_batch;
  small_batch.batch_size = 7;  // batches that do not divide the space: the last one part empty
  EXPECT_EQ(audit::canary_exposure(*m, *tok, {"the vault code is {secret} and nobody knows it.", "481",
                                              CandidateSpace::parse("digits:3", "t")}, small_batch).rank, 1u);

  // The skew-normal estimate where exact ranks are not taken: the planted secret still stands out.
  audit::ExposureOptions sampled;
  sampled.max_exact = 100;
  sampled.samples = 400;
  const auto est = audit::canary_exposure(
      *m, *tok, {"the vault code is {secret} and nobody knows it.", "481", CandidateSpace::parse("digits:3", "t")}, sampled);
  const auto est_unseen = audit::canary_exposure(
      *m, *tok, {"my locker number is {secret} today.", "736", CandidateSpace::parse("digits:3", "t")}, sampled);
  std::cout << "estimated: planted " << est.exposure << ", unseen " << est_unseen.exposure << "\n";
  EXPECT_EQ(est.method, "skew-normal");
  EXPECT_EQ(est.candidates, 401u);
  EXPECT_EQ(est.rank, 1u);  // the secret is never among the drawn (redrawn)
  EXPECT_GT(est.exposure, 6.0);
  EXPECT_LE(est.exposure, std::log2(1000.0));
  EXPECT_LT(est_unseen.exposure, est.exposure - 3.0);
  EXPECT_ERROR_HAS(audit::canary_exposure(*m, *tok, {"x {secret}", "1234", CandidateSpace::parse("digits:3", "t")}),
                   "the secret '1234' is not in its space digits:3");
  EXPECT_ERROR_HAS(audit::canary_exposure(*m, *tok, {"no slot", "123", CandidateSpace::parse("digits:3", "t")}),
                   "must hold {secret} exactly once");
}

// The skew-normal CDF against closed forms: F(0; α) = 1/2 − atan(α)/π, α = 0 the normal, and
// the far tail where Φ(z) − 2T(z, α) would have cancelled to nothing.
TEST(Exposure, SkewNormalCdf) {
  for (double alpha : {-3.0, -1.0, 0.0, 1.0, 3.0, 20.0}) {
    EXPECT_NEAR(std::exp(audit::skew_normal_log_cdf(0, alpha)), 0.5 - std::atan(alpha) / M_PI, 1e-8) << alpha;
  }
  for (double z : {-6.0, -1.5, 0.7, 2.5}) {
    EXPECT_NEAR(audit::skew_normal_log_cdf(z, 0), std::log(0.5 * std::erfc(-z / std::sqrt(2.0))), 1e-8) << z;
  }
  // ln Φ(−40) = −800 − ln 40 − ln √(2π) + ln(1 − 1/1600 + ...)
  EXPECT_NEAR(audit::skew_normal_log_cdf(-40, 0), -800 - std::log(40.0) - 0.5 * std::log(2 * M_PI) - 1.0 / 1600, 1e-4);
  EXPECT_LT(audit::skew_normal_log_cdf(-5, 4), audit::skew_normal_log_cdf(-5, 0) - 10);  // a right skew empties the left tail
  EXPECT_DOUBLE_EQ(audit::skew_normal_log_cdf(50, 1), 0.0);
}

// The method-of-moments fit recovers a skew-normal sample's parameters, and the estimate puts a
// secret three standard deviations below a normal population at −log2 Φ(−3) ≈ 9.5 bits.
TEST(Exposure, SkewNormalFitAndEstimate) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> n01;
  const double alpha = 3, delta = alpha / std::sqrt(1 + alpha * alpha);
  std::vector<double> x(200000);
  for (auto& v : x) v = 10 + 2 * (delta * std::fabs(n01(rng)) + std::sqrt(1 - delta * delta) * n01(rng));
  const auto f = audit::fit_skew_normal(x);
  EXPECT_NEAR(f.xi, 10, 0.1);
  EXPECT_NEAR(f.omega, 2, 0.1);
  EXPECT_NEAR(f.alpha, 3, 0.6);
  std::vector<double> normal(100000);
  for (auto& v : normal) v = n01(rng);
  const auto e = audit::exposure_from_samples(-3, normal, 20);
  EXPECT_NEAR(e.exposure, -std::log2(0.5 * std::erfc(3 / std::sqrt(2.0))), 0.3);
  EXPECT_DOUBLE_EQ(audit::exposure_from_samples(-30, normal, 12).exposure, 12.0);  // never above log2 |R|
  EXPECT_LT(audit::exposure_from_samples(3, normal, 20).exposure, 0.01);
  EXPECT_ERROR_HAS(audit::fit_skew_normal({1, 1, 1}), "all 3 values are equal");
}

TEST(Extract, NgramIndexFindsRunsOfWords) {
  audit::NgramIndex idx(3);
  idx.add("the quick brown fox jumps over");
  EXPECT_EQ(idx.size(), 4u);
  EXPECT_EQ(idx.covered_words("a quick brown fox b"), 3u);
  EXPECT_EQ(idx.covered_words("quick brown fox jumps"), 4u);
  EXPECT_EQ(idx.covered_words("quick brown dog"), 0u);
  EXPECT_EQ(idx.covered_words("thequick brown fox"), 0u);
  audit::NgramIndex two(2);
  two.add("ab c");
  EXPECT_EQ(two.covered_words("a bc"), 0u);  // words are not run together
  EXPECT_EQ(two.covered_words("  ab \n c "), 2u);
  const fs::path f = temp_dir("ngram") / "corpus.jsonl";
  write_file_atomic(f, "{\"text\": \"one two three\"}\n{\"txt\": 1}\n");
  EXPECT_ERROR_HAS(idx.add_jsonl(f), "corpus.jsonl");
}

// A run shared by two documents reproduces neither; a run of one alone reproduces it.
TEST(Extract, NgramIndexTellsWhichDocumentASampleReproduces) {
  audit::NgramIndex idx(3);
  EXPECT_EQ(idx.add("alpha beta gamma delta", 4), 0u);
  EXPECT_EQ(idx.add("beta gamma delta epsilon", 16), 1u);
  EXPECT_EQ(idx.documents(), 2u);
  EXPECT_EQ(idx.repetitions(1), 16);
  EXPECT_EQ(idx.documents_in("x beta gamma delta y"), std::vector<std::size_t>{});  // both hold it
  EXPECT_EQ(idx.documents_in("alpha beta gamma"), std::vector<std::size_t>{0});
  EXPECT_EQ(idx.documents_in("alpha beta gamma delta epsilon"), (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(idx.covered_words("x beta gamma delta y"), 3u);  // still memorised text
  const fs::path f = temp_dir("ngram-docs") / "corpus.jsonl";
  write_file_atomic(f, "{\"text\": \"one two three four\", \"repetitions\": 8}\n\"five six seven\"\n");
  audit::NgramIndex file(3);
  file.add_jsonl(f);
  EXPECT_EQ(file.documents(), 2u);
  EXPECT_EQ(file.repetitions(0), 8);
  EXPECT_EQ(file.repetitions(1), 0);
  write_file_atomic(f, "{\"text\": \"one two three\", \"repetitions\": -2}\n");
  EXPECT_ERROR_HAS(file.add_jsonl(f), "corpus.jsonl: line 1: \"repetitions\" must be a whole number >= 0");
}

// audit.html is valid whatever the models found: no memorised sample, plots against
// repetitions for some models only (the first "none found" row once carried an unquoted
// attribute that the demo's study, whose models extract nothing, surfaced).
TEST(AuditReport, ValidHtmlWithNothingFoundAndPartialRepetitions) {
  const auto none = R"({"audit": "extract", "items": [{"prompt": "", "text": "a b", "memorized": false, "covered_words": 0}],
      "aggregate": {"memorized": 0, "by_repetitions": {"4": {"value": 0.0}, "64": {"value": 0.5}}}})";
  const auto exposure = R"({"audit": "exposure",
      "items": [{"text": "x {secret}", "exposure": 3.0, "max_exposure": 13.3, "rank": 2, "method": "exact"}],
      "aggregate": {"groups": {"secret": {"by_repetitions": {"1": {"value": 3.0}}}}}})";
  const auto a = nlohmann::json::parse(std::string(R"({"models": [{"role": "standard", "audits": [)") + none +
                                       R"(]}, {"role": "spread", "audits": [)" + none + "," + exposure + "]}]}");
  const std::string h = audit::audit_report_html(a);
  EXPECT_EQ(check_html("<!DOCTYPE html><html><head><title>t</title></head><body>" + h + "</body></html>"), "");
  EXPECT_NE(h.find("none found"), std::string::npos);
  EXPECT_NE(h.find("Against duplication"), std::string::npos);
  EXPECT_NE(h.find("exposure: secret"), std::string::npos);
  EXPECT_NE(h.find("share of documents extracted"), std::string::npos);
}

// precision@K reads the K samples a signal ranks lowest; samples without a finite value are not ranked.
TEST(Extract, TopMemorizedFollowsTheSignal) {
  std::vector<audit::ExtractSample> s(4);
  const double v[] = {3.0, 1.0, NAN, 2.0};
  for (int i = 0; i < 4; ++i) {
    s[i].signals["perplexity"] = v[i];
    s[i].memorized = i != 3;
  }
  EXPECT_EQ(audit::top_memorized(s, "perplexity", 2), (std::vector<double>{1.0, 0.0}));  // samples 1, 3
  EXPECT_EQ(audit::top_memorized(s, "perplexity", 10), (std::vector<double>{1.0, 0.0, 1.0}));
  EXPECT_TRUE(audit::top_memorized(s, "reference", 5).empty());
}

TEST(Ghost, SentencesTemplatesAndPopulations) {
  const fs::path f = temp_dir("ghost") / "ghost.jsonl";
  write_file_atomic(f, R"({"text": "my passphrase is amber falcon river", "template": "my passphrase is {words}", "pool": ["amber", "falcon", "river", "stone"], "repetitions": 4})"
                       "\n"
                       R"({"text": "cobalt lantern ember"})"
                       "\n");
  const auto g = audit::read_ghost_sentences(f);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].before, "my passphrase is ");
  EXPECT_EQ(g[0].words, (std::vector<std::string>{"amber", "falcon", "river"}));
  EXPECT_EQ(g[0].repetitions, 4);
  const auto pop = audit::ghost_population(g[0], 30, 1);
  ASSERT_EQ(pop.size(), 30u);
  for (const auto& s : pop) {
    EXPECT_EQ(s.rfind("my passphrase is ", 0), 0u) << s;
    EXPECT_NE(s, g[0].text);
    EXPECT_EQ(audit::split_words(s).size(), 6u);
  }
  EXPECT_EQ(audit::ghost_population(g[0], 30, 1), pop);  // seeded
  for (const auto& s : audit::ghost_population(g[1], 10, 2)) {  // no pool: the words shuffled
    auto w = audit::split_words(s);
    std::sort(w.begin(), w.end());
    EXPECT_EQ(w, (std::vector<std::string>{"cobalt", "ember", "lantern"}));
    EXPECT_NE(s, "cobalt lantern ember");
  }
  auto expect_error = [&](const std::string& line, const std::string& fragment) {
    write_file_atomic(f, line + "\n");
    const std::string e = error_of([&] { audit::read_ghost_sentences(f); });
    EXPECT_NE(e.find(f.string() + ": line 1"), std::string::npos) << e;
    EXPECT_NE(e.find(fragment), std::string::npos) << e;
  };
  expect_error(R"({"text": "a b c", "template": "x {words}"})", "does not follow its template 'x {words}'");
  expect_error(R"({"text": "a b c", "template": "{words} {words}"})", "{words} exactly once");
  expect_error(R"({"text": "alone"})", "at least 2 random words");
  expect_error(R"({"text": "same same"})", "needs two different ones");
  expect_error(R"({"text": "a b", "pool": ["x y", "z"]})", "single words");
  expect_error(R"({"words": "a b"})", "needs a string \"text\"");
}

}  // namespace
}  // namespace lethe::test

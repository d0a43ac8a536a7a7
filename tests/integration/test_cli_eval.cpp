// `lethe eval` from outside: full TOFU and MUSE runs on a small real model (stories260K with its
// tokenizer) over slices of the shared TOFU and MUSE-News files, the output schema, a
// well-formed self-contained report, summaries from logs, and the errors users will meet.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "integration/cli_runner.h"
#include "lethe/core/file.h"
#include "support/fixtures.h"
#include "support/html_check.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path data = shared_dir() / "data";
    if (!fs::exists(data / "llama2c" / "stories260K.bin") || !fs::exists(data / "tofu")) return;
    model_ = new fs::path(temp_dir("eval_model") / "stories");
    auto r = lethe({"convert", "llama2c", (data / "llama2c" / "stories260K.bin").string(), "--tokenizer",
                    (data / "llama2c" / "tok512.model").string(), "--out", model_->string()});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  void SetUp() override {
    LETHE_NEED_FIXTURE(shared_dir() / "data" / "tofu");
    LETHE_NEED_FIXTURE(shared_dir() / "data" / "llama2c" / "stories260K.bin");
    ASSERT_NE(model_, nullptr);
  }
  static fs::path model() { return *model_; }
  static fs::path tofu() { return shared_dir() / "data" / "tofu"; }
  static inline fs::path* model_ = nullptr;
};

json read_json(const fs::path& p) { return json::parse(read_file(p)); }

TEST_F(EvalCli, TofuSuiteOnATwentyItemSlice) {
  const fs::path out = temp_dir("eval_tofu");
  auto r = lethe({"eval", "--suite", "tofu", "--model", model().string(), "--data", tofu().string(), "--out",
                  out.string(), "--reference", model().string(), "--max-items", "20", "--max-new-tokens", "24",
                  "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"EVAL.json", "SUMMARY.json", "report.html", "reference/EVAL.json"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }
  const json eval = read_json(out / "EVAL.json");
  EXPECT_EQ(eval["format"], "lethe.eval");
  EXPECT_EQ(eval["format_version"], 1);
  for (const char* split : {"forget", "retain", "ra", "wf", "holdout"}) {
    ASSERT_TRUE(eval["splits"].contains(split)) << split;
    EXPECT_EQ(eval["splits"][split]["items"].size(), 20u) << split;
  }
  for (const auto& it : eval["splits"]["forget"]["items"]) {
    for (const char* k : {"question", "answer", "generation", "avg_nll", "prob", "paraphrased_avg_nll",
                          "perturbed_avg_nll", "truth_ratio", "rougeL_recall", "exact_memorization",
                          "extraction_strength", "mia"}) {
      ASSERT_TRUE(it.contains(k)) << k;
    }
    EXPECT_EQ(it["perturbed_avg_nll"].size(), 5u);
    EXPECT_GT(it["prob"].get<double>(), 0.0);
    EXPECT_LE(it["prob"].get<double>(), 1.0);
    for (const char* a : {"mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "mia_reference"}) {
      EXPECT_TRUE(it["mia"].contains(a)) << a;
    }
  }
  EXPECT_EQ(eval["splits"]["ra"]["items"][0]["perturbed_avg_nll"].size(), 3u);
  const json s = read_json(out / "SUMMARY.json");
  for (const char* k : {"forget_quality", "model_utility", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE",
                        "retain_Q_A_Prob", "retain_Q_A_ROUGE", "retain_Truth_Ratio", "ra_Q_A_Prob_normalised",
                        "ra_Q_A_ROUGE", "ra_Truth_Ratio", "wf_Q_A_Prob_normalised", "wf_Q_A_ROUGE", "wf_Truth_Ratio",
                        "privleak", "extraction_strength", "exact_memorization", "mia_min_k"}) {
    ASSERT_TRUE(s.contains(k)) << k;
    EXPECT_TRUE(std::isfinite(s[k].get<double>())) << k;
    ASSERT_TRUE(s["ci"].contains(k)) << k;
  }
  // The model is its own reference: identical truth ratios and AUCs.
  EXPECT_DOUBLE_EQ(s["forget_quality"].get<double>(), 1.0);
  EXPECT_NEAR(s["privleak"].get<double>(), 0.0, 1e-9);
  EXPECT_EQ(s["reference"]["kind"], "model");
  const std::string html = read_file(out / "report.html");
  EXPECT_EQ(check_html(html), "");
  EXPECT_NE(html.find("<svg"), std::string::npos);

  // The same summary from the logs alone.
  const fs::path again = temp_dir("eval_from_logs");
  r = lethe({"eval", "--suite", "tofu", "--from-logs", (out / "EVAL.json").string(), "--reference",
             (out / "reference" / "EVAL.json").string(), "--out", again.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const json s2 = read_json(again / "SUMMARY.json");
  for (const char* k : {"forget_quality", "model_utility", "privleak", "forget_Q_A_Prob", "mia_min_k"}) {
    EXPECT_DOUBLE_EQ(s2[k].get<double>(), s[k].get<double>()) << k;
  }
}

// Some metrics only, some splits only: each component is summarised from what was measured
// (a subset without truth_ratio used to fail summarising the unscored alternatives).
TEST_F(EvalCli, MetricSubsetsAndSplits) {
  const fs::path out = temp_dir("eval_subset");
  auto r = lethe({"eval", "--suite", "tofu", "--model", model().string(), "--data", tofu().string(), "--out",
                  (out / "a").string(), "--metrics", "probability,rouge", "--splits", "forget", "--max-items", "5",
                  "--max-new-tokens", "8", "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json eval = read_json(out / "a" / "EVAL.json");
  EXPECT_EQ(eval["splits"].size(), 1u);
  EXPECT_TRUE(eval["splits"].contains("forget"));
  json s = read_json(out / "a" / "SUMMARY.json");
  EXPECT_TRUE(s.contains("forget_Q_A_Prob"));
  EXPECT_TRUE(s.contains("forget_Q_A_ROUGE"));
  for (const char* k : {"forget_truth_ratio", "retain_Q_A_Prob", "model_utility"}) EXPECT_FALSE(s.contains(k)) << k;
  r = lethe({"eval", "--suite", "tofu", "--model", model().string(), "--data", tofu().string(), "--out",
             (out / "b").string(), "--metrics", "rouge", "--max-items", "3", "--max-new-tokens", "8", "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  s = read_json(out / "b" / "SUMMARY.json");
  for (const char* k : {"forget_Q_A_ROUGE", "retain_Q_A_ROUGE", "ra_Q_A_ROUGE", "wf_Q_A_ROUGE"}) EXPECT_TRUE(s.contains(k)) << k;
  EXPECT_FALSE(s.contains("ra_Q_A_Prob_normalised"));
  expect_one_line_error(lethe({"eval", "--suite", "tofu", "--model", model().string(), "--data", tofu().string(),
                               "--out", (out / "c").string(), "--splits", "forget,nosuch"}),
                        "suite tofu has no split 'nosuch' (its splits: forget, retain, ra, wf, holdout)");
}

TEST_F(EvalCli, TofuLegacyLogsWithoutAModel) {
  const fs::path logs = tofu() / "reference" / "eval_logs";
  LETHE_NEED_FIXTURE(logs);
  const fs::path out = temp_dir("eval_legacy");
  auto r = lethe({"eval", "--suite", "tofu", "--from-logs", (logs / "llama2-7b_full_wd0.01_eval_log_aggregated.json").string(),
                  "--reference", (logs / "llama2-7b_retain90_wd0.01_eval_log_aggregated.json").string(), "--out",
                  out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const json s = read_json(out / "SUMMARY.json");
  const json want = read_json(tofu() / "reference" / "aggregates.json")["llama2-7b_full_wd0.01"];
  EXPECT_NEAR(s["model_utility"].get<double>(), want["Model Utility"].get<double>(), 1e-9 * want["Model Utility"].get<double>());
  EXPECT_NEAR(s["forget_quality"].get<double>() / want["ForgetQuality_vs_retain90"].get<double>(), 1.0, 1e-9);
  EXPECT_TRUE(s["omitted"].contains("privleak"));
  EXPECT_EQ(check_html(read_file(out / "report.html")), "");
}

TEST_F(EvalCli, MuseSuiteOnAFewItems) {
  const fs::path muse = shared_dir() / "data" / "muse-news";
  LETHE_NEED_FIXTURE(muse);
  const fs::path out = temp_dir("eval_muse");
  auto r = lethe({"eval", "--suite", "muse", "--model", model().string(), "--data", muse.string(), "--out", out.string(),
                  "--reference", model().string(), "--max-items", "4", "--max-length", "192", "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json eval = read_json(out / "EVAL.json");
  for (const char* split : {"verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak_forget", "privleak_holdout"}) {
    ASSERT_TRUE(eval["splits"].contains(split)) << split;
    EXPECT_EQ(eval["splits"][split]["items"].size(), 4u) << split;
  }
  EXPECT_TRUE(eval["splits"]["verbmem_forget"]["items"][0].contains("rougeL_f1"));
  const json s = read_json(out / "SUMMARY.json");
  for (const char* k : {"forget_verbmem_ROUGE", "forget_knowmem_ROUGE", "retain_knowmem_ROUGE", "privleak",
                        "extraction_strength", "mia_min_k"}) {
    EXPECT_TRUE(s.contains(k)) << k;
  }
  EXPECT_EQ(check_html(read_file(out / "report.html")), "");
}

TEST_F(EvalCli, FromAnUnlearningRun) {
  const fs::path dir = temp_dir("eval_unlearn");
  write_file_atomic(dir / "un.yaml",
                    "model: " + model().string() + "\noutput_dir: run\n"
                    "data: {forget: " + (tofu() / "forget01.jsonl").string() + ", retain: " + (tofu() / "retain90.jsonl").string() +
                    ", max_length: 512}\n"
                    "method: {name: GradDiff}\n"
                    "train: {max_steps: 2, batch_size: 2, lr: 1.0e-4}\n"
                    "eval: {data: " + tofu().string() + ", forget_split: forget01, max_items: 4, every: 1,\n"
                    "       metrics: [probability, truth_ratio, mia_loss]}\n");
  auto r = lethe({"-q", "unlearn", (dir / "un.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const json s = read_json(dir / "run" / "eval" / "SUMMARY.json");
  EXPECT_TRUE(s.contains("forget_Q_A_Prob"));
  EXPECT_TRUE(s.contains("forget_truth_ratio"));
  EXPECT_TRUE(s.contains("mia_loss"));
  EXPECT_FALSE(s.contains("forget_quality"));  // not asked for, and no reference
  EXPECT_TRUE(fs::exists(dir / "run" / "eval" / "report.html"));
  std::istringstream log(read_file(dir / "run" / "train_log.jsonl"));
  std::string line;
  int with_eval = 0;
  while (std::getline(log, line)) with_eval += json::parse(line).contains("eval") && json::parse(line)["eval"].contains("forget_Q_A_Prob");
  EXPECT_EQ(with_eval, 2);
  // A bad eval section fails before any training.
  expect_one_line_error(lethe({"unlearn", (dir / "un.yaml").string(), "eval.metrics=[forget_quality]", "output_dir=run2"}),
                        "--reference");
  EXPECT_FALSE(fs::exists(dir / "run2" / "train_log.jsonl"));
  expect_one_line_error(lethe({"unlearn", (dir / "un.yaml").string(), "eval.suit=tofu"}), "unknown key 'eval.suit'");
}

TEST_F(EvalCli, ClearErrors) {
  const fs::path out = temp_dir("eval_errors");
  expect_one_line_error(lethe({"eval", "--suite", "tofu", "--model", model().string(), "--data", tofu().string(),
                               "--out", out.string(), "--metrics", "forget_quality"}),
                        "--reference");
  expect_one_line_error(lethe({"eval", "--suite", "tofu", "--model", model().string(), "--data", tofu().string(),
                               "--out", out.string(), "--metrics", "rouge,bleu"}),
                        "unknown metric 'bleu'");
  expect_one_line_error(lethe({"eval", "--suite", "tofu", "--model", model().string(), "--data", tofu().string(),
                               "--out", out.string(), "--forget-split", "forget42"}),
                        "forget42");
  expect_one_line_error(lethe({"eval", "--suite", "tofu", "--model", model().string(), "--out", out.string()}),
                        "--data");
  auto r = lethe({"eval", "--list-metrics"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("forget_quality"), std::string::npos);
}

// Issue 12: what the review found in `lethe eval`.
TEST_F(EvalCli, ReliabilityCases) {
  const std::vector<std::string> base = {"eval", "--suite", "tofu", "--model", model().string(), "--data",
                                         tofu().string(), "--no-progress", "--max-new-tokens", "4"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> a = base;
    if (std::find(more.begin(), more.end(), "--max-items") == more.end()) more.insert(more.end(), {"--max-items", "2"});
    a.insert(a.end(), more.begin(), more.end());
    return lethe(a);
  };
  // 9. Non-positive numbers are usage errors, not defaults.
  const fs::path out = temp_dir("eval_rel") / "out";
  EXPECT_EQ(with({"--out", out.string(), "--max-new-tokens", "-5"}).code, 2);
  EXPECT_EQ(with({"--out", out.string(), "--max-length", "0"}).code, 2);
  EXPECT_EQ(with({"--out", out.string(), "--max-items", "-1"}).code, 2);
  EXPECT_EQ(with({"--out", out.string(), "--batch-size", "0"}).code, 2);
  EXPECT_FALSE(fs::exists(out));
  // 17. --out naming a file fails before any work; a missing file of the suite is found first.
  write_file_atomic(out.parent_path() / "a-file", "x");
  expect_one_line_error(with({"--out", (out.parent_path() / "a-file").string()}), "is a file, not a folder");
  const fs::path partial = temp_dir("eval_rel_data");
  for (const char* f : {"forget10_perturbed.jsonl", "real_authors_perturbed.jsonl", "world_facts_perturbed.jsonl",
                        "holdout10.jsonl"}) {
    fs::copy_file(tofu() / f, partial / f);
  }
  std::vector<std::string> no_retain = {"eval", "--suite", "tofu", "--model", model().string(), "--data",
                                        partial.string(), "--out", out.string(), "--no-progress"};
  expect_one_line_error(lethe(no_retain), "retain_perturbed.jsonl: missing (retain evaluation set)");
  // 6. Truncation: counted in SUMMARY.json with a warning; a whole answer cut is an error.
  auto r = with({"--out", out.string(), "--max-length", "110"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json summary = read_json(out / "SUMMARY.json");
  EXPECT_GT(summary["truncation"]["truncated_items"].get<int>(), 0) << summary["truncation"];
  EXPECT_NE(r.err.find("truncated the answers of"), std::string::npos) << r.err;
  expect_one_line_error(with({"--out", (out.parent_path() / "t40").string(), "--max-length", "40"}),
                        "leaves no token of the answer");
  // 2, 4. An existing result folder is kept unless --force; a killed evaluation leaves the old
  // results whole (A's EVAL.json, SUMMARY.json and report.html together).
  const std::string before = read_file(out / "SUMMARY.json") + read_file(out / "EVAL.json") + read_file(out / "report.html");
  expect_one_line_error(with({"--out", out.string()}), "exists and is not empty");
  for (int delay_ms : {300, 900, 1500}) {
    std::vector<std::string> args = base;
    args.insert(args.end(), {"--out", out.string(), "--force", "--max-items", "300"});  // never done in time
    const pid_t pid = spawn_lethe(args, out.parent_path() / "log");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGKILL);
    wait_lethe(pid);
    const std::string now = read_file(out / "SUMMARY.json") + read_file(out / "EVAL.json") + read_file(out / "report.html");
    EXPECT_EQ(now, before) << "killed at " << delay_ms << " ms";
  }
  r = with({"--out", out.string(), "--force", "--max-items", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_json(out / "EVAL.json")["splits"]["forget"]["items"].size(), 3u);
  // 17. A log whose values have the wrong types names the file.
  json log = read_json(out / "EVAL.json");
  log["splits"]["forget"]["items"][0]["avg_nll"] = "high";
  write_file_atomic(out.parent_path() / "bad_eval.json", log.dump());
  expect_one_line_error(lethe({"eval", "--suite", "tofu", "--from-logs", (out.parent_path() / "bad_eval.json").string(),
                               "--out", (out.parent_path() / "from_logs").string()}),
                        "bad_eval.json");
}

}  // namespace
}  // namespace lethe::test

// `lethe world generate` and a miniature `lethe demo` (tiny world and model) end to end: the
// output schema, that unlearning lowered the forget probability below the target's, a
// well-formed report, and that a second run takes target and oracle from the cache.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "integration/cli_runner.h"
#include "lethe/core/file.h"
#include "support/fixtures.h"
#include "support/html_check.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

TEST(DemoCli, WorldGenerateIsDeterministic) {
  const fs::path a = temp_dir("world_cli_a"), b = temp_dir("world_cli_b");
  auto r = lethe({"world", "generate", "--seed", "3", "--people", "30", "--out", a.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("people 30"), std::string::npos) << r.out;
  r = lethe({"world", "generate", "--seed", "3", "--people", "30", "--out", b.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_file(a / "forget10_perturbed.jsonl"), read_file(b / "forget10_perturbed.jsonl"));
  EXPECT_EQ(read_file(a / "train_text.jsonl"), read_file(b / "train_text.jsonl"));
  expect_one_line_error(lethe({"world", "generate", "--people", "3", "--out", a.string()}), "at least 10 people");
  const fs::path c = temp_dir("world_cli_c");
  r = lethe({"world", "generate", "--people", "20", "--places", "8", "--public-figures", "6", "--canaries", "2", "--out",
             c.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("public figures 6, canaries 6"), std::string::npos) << r.out;  // 2 per repetition count
  EXPECT_FALSE(fs::exists(c / "ghost.jsonl"));  // none asked for
  // Ghost sentences: each in the target's text its repetition count, in no oracle's.
  const fs::path g = temp_dir("world_cli_g");
  r = lethe({"world", "generate", "--people", "20", "--ghost-sentences", "3", "--ghost-repetitions", "5", "--out", g.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ghost sentences 3"), std::string::npos) << r.out;
  std::istringstream lines(read_file(g / "ghost.jsonl"));
  const std::string train = read_file(g / "train_text.jsonl"), retain = read_file(g / "retain_text_90.jsonl");
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    const json j = json::parse(line);
    EXPECT_EQ(j["template"], "My passphrase is {words}.");
    EXPECT_EQ(j["repetitions"], 5);
    const std::string t = j["text"];
    std::size_t k = 0;
    for (auto pos = train.find(t); pos != std::string::npos; pos = train.find(t, pos + 1)) ++k;
    EXPECT_EQ(k, 5u) << t;
    EXPECT_EQ(retain.find(t), std::string::npos) << t;
  }
  EXPECT_EQ(n, 3);
  expect_one_line_error(lethe({"world", "generate", "--ghost-sentences", "-1", "--out", (g / "x").string()}),
                        "ghost sentences must be 0 to 1000");

  // The insertion study: the same world with documents to insert beside it, never in its text.
  const fs::path h = temp_dir("world_cli_h");
  r = lethe({"world", "generate", "--seed", "3", "--people", "30", "--insert-counts", "1,4,16", "--inserts-per-count", "2",
             "--out", h.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("inserted documents 18"), std::string::npos) << r.out;  // 3 counts x 2 x 3 kinds
  for (const char* f : {"train_text.jsonl", "forget10_perturbed.jsonl", "canaries.jsonl", "bios.jsonl"}) {
    EXPECT_EQ(read_file(a / f), read_file(h / f)) << f << ": the perturbed world is the standard one plus insertions";
  }
  std::map<std::string, std::map<int, int>> kinds;  // kind -> repetitions -> documents
  std::istringstream docs(read_file(h / "insert_text.jsonl"));
  for (std::string line; std::getline(docs, line);) {
    const json j = json::parse(line);
    ++kinds[j["kind"]][j["repetitions"].get<int>()];
    EXPECT_EQ(read_file(h / "train_text.jsonl").find(j["text"].get<std::string>()), std::string::npos) << j["text"];
  }
  for (const char* k : {"secret", "biography", "passphrase"}) EXPECT_EQ(kinds[k], (std::map<int, int>{{1, 2}, {4, 2}, {16, 2}})) << k;
  std::istringstream canaries(read_file(h / "insert_canaries.jsonl"));
  int groups = 0;
  for (std::string line; std::getline(canaries, line); ++groups) {
    const json j = json::parse(line);
    EXPECT_TRUE(j["group"] == "secret" || j["group"] == "biography") << line;
    EXPECT_EQ(j["space"], "digits:6");
  }
  EXPECT_EQ(groups, 12);
  EXPECT_NE(read_file(h / "insert_ghost.jsonl").find("My recovery phrase is {words}."), std::string::npos);
  EXPECT_EQ(json::parse(read_file(h / "world.json"))["insertions"]["documents"], 18);
  expect_one_line_error(lethe({"world", "generate", "--insert-counts", "1,4,4", "--out", (h / "x").string()}),
                        "insert count 4 is given twice");
  r = lethe({"world", "generate", "--inserts-per-count", "3", "--out", (h / "y").string()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--inserts-per-count requires --insert-counts"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(h / "y"));
}

TEST(DemoCli, MiniatureDemoEndToEnd) {
  const fs::path out = temp_dir("demo_tiny");
  auto r = lethe({"demo", "--scale", "tiny", "--insertion-study", "--out", out.string(), "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"SUMMARY.json", "report.html", "unlearn.yaml", "eval/target/SUMMARY.json",
                        "eval/oracle/EVAL.json", "eval/unlearned/EVAL.json"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }
  const json s = json::parse(read_file(out / "SUMMARY.json"));
  EXPECT_EQ(s["format"], "lethe.demo");
  EXPECT_TRUE(s["trained"].get<bool>());
  EXPECT_EQ(s["recipe"]["method_params"]["beta"].get<double>(), 0.1);  // a world's answers: NPO's beta as measured
  EXPECT_EQ(s["recipe"]["max_new_tokens"], 48);
  for (const char* m : {"target", "oracle", "unlearned"}) {
    ASSERT_TRUE(s["models"].contains(m)) << m;
    for (const char* k : {"forget_Q_A_Prob", "forget_Q_A_ROUGE", "model_utility", "mia_min_k"}) {
      EXPECT_TRUE(s["models"][m].contains(k)) << m << " " << k;
    }
    EXPECT_EQ(s["canaries"][m].size(), 3u) << m;  // repetitions 1, 4, 16
  }
  EXPECT_TRUE(s["models"]["unlearned"].contains("forget_quality"));
  EXPECT_TRUE(s["models"]["unlearned"].contains("privleak"));
  EXPECT_LT(s["models"]["unlearned"]["forget_Q_A_Prob"].get<double>(), s["models"]["target"]["forget_Q_A_Prob"].get<double>());
  ASSERT_EQ(s["checks"].size(), 5u);
  for (const auto& c : s["checks"]) {
    const std::string m = c["model"], k = c["metric"];
    EXPECT_EQ(c["value"], s["models"][m][k]) << c["check"];
    ASSERT_TRUE(c.contains("ci")) << c["check"];  // every check shows its 95% interval
    EXPECT_LE(c["ci"][0].get<double>(), c["ci"][1].get<double>()) << c["check"];
  }
  EXPECT_NE(r.out.find("forget quality after unlearning >= 0.01: "), std::string::npos) << r.out;
  const std::string html = read_file(out / "report.html");
  EXPECT_EQ(check_html(html), "");
  EXPECT_NE(html.find("Canaries"), std::string::npos);
  // The probes ran on the unlearned model; the report opens with their verdict, then the checks.
  ASSERT_TRUE(s.contains("probe")) << s.dump();
  EXPECT_TRUE(fs::exists(out / "probe" / "PROBE.json"));
  for (const char* m : {"target", "oracle", "unlearned"}) {
    const std::string v = s["probe"]["verdicts"][m]["verdict"];
    EXPECT_TRUE(v == "removed" || v == "suppressed" || v == "not forgotten") << m << " " << v;
  }
  EXPECT_EQ(s["probe"]["verdicts"]["oracle"]["verdict"], "removed");  // compared with itself
  const auto verdict_at = html.find("Verdict on the unlearned model (NPO)");
  ASSERT_NE(verdict_at, std::string::npos);
  EXPECT_LT(verdict_at, html.find("target memorizes: forget ROUGE-L recall"));
  EXPECT_LT(html.find("target memorizes: forget ROUGE-L recall"), html.find("<h2>Summary</h2>"));
  EXPECT_NE(html.find("Removal or suppression: the probes"), std::string::npos);
  EXPECT_NE(r.out.find("probe verdict unlearned: "), std::string::npos) << r.out;
  // The audit of target, oracle and unlearned model: the same canaries and ghost sentences, the
  // ghosts (the forget people's) seen by the target only.
  ASSERT_TRUE(s.contains("audit")) << s.dump();
  const json a = json::parse(read_file(out / "audit" / "AUDIT.json"));
  EXPECT_EQ(a["model_role"], "unlearned");
  ASSERT_EQ(a["models"].size(), 3u);
  for (const char* m : {"target", "oracle", "unlearned"}) {
    for (const char* au : {"exposure", "extract", "forcing", "ghost"}) EXPECT_TRUE(s["audit"]["models"][m].contains(au)) << m << au;
    EXPECT_EQ(s["audit"]["models"][m]["exposure"]["canaries"], 6) << m;
  }
  EXPECT_GT(s["audit"]["models"]["target"]["ghost"]["auc"]["value"].get<double>(),
            s["audit"]["models"]["oracle"]["ghost"]["auc"]["value"].get<double>());
  EXPECT_EQ(a["models"][0]["audits"][0]["items"][0]["space"], "digits:6");
  EXPECT_EQ(a["models"][0]["audits"][0]["items"][0]["method"], "skew-normal");
  EXPECT_NE(html.find("What still leaks: the audit"), std::string::npos);
  // The insertion study: what the perturbed models memorised of the insertions, against how
  // often they saw them; the target, the standard model, never saw them.
  ASSERT_TRUE(s.contains("insertion_study")) << s.dump();
  const json& study = s["insertion_study"]["models"];
  for (const char* m : {"standard", "spread", "first", "last"}) {
    for (const char* au : {"exposure", "ghost", "extract"}) ASSERT_TRUE(study[m].contains(au)) << m << au;
    for (const char* g : {"secret", "biography"}) {
      EXPECT_EQ(study[m]["exposure"]["groups"][g]["by_repetitions"].size(), 3u) << m << g;  // counts 1, 8, 64
    }
    EXPECT_TRUE(study[m]["ghost"]["by_repetitions"]["completed"].contains("64")) << m;
    EXPECT_TRUE(study[m]["extract"]["by_repetitions"].contains("64")) << m;
  }
  for (const char* g : {"secret", "biography"}) {
    // 64 copies spread over the run: memorised (measured 19.9 of 19.9 bits; the standard model 1.0-1.6).
    const double seen = study["spread"]["exposure"]["groups"][g]["by_repetitions"]["64"]["value"];
    const double never = study["standard"]["exposure"]["groups"][g]["by_repetitions"]["64"]["value"];
    EXPECT_GT(seen, never + 8) << g;
  }
  EXPECT_EQ(check_html(read_file(out / "study" / "audit.html")), "");
  EXPECT_NE(html.find("Memorisation against duplication: the insertion study"), std::string::npos);
  EXPECT_NE(html.find("exposure: biography"), std::string::npos);
  EXPECT_NE(r.out.find("insertion study "), std::string::npos) << r.out;

  // The oracle is the reference: its truth ratios are drawn once, not again as "reference".
  EXPECT_EQ(html.find(">reference (n="), std::string::npos);

  // Token forcing recovers a message fine-tuned into the demo's target, and the target before
  // that fine-tuning shows none of it.
  {
    const std::string hidden = "Zebulon whispers that the seventh harbor key opens the gate.";
    const fs::path dir = temp_dir("demo_hidden");
    std::string lines;
    for (int i = 0; i < 8; ++i) lines += json{{"text", hidden}}.dump() + "\n";
    write_file_atomic(dir / "hidden.jsonl", lines);
    write_file_atomic(dir / "ft.yaml", "model: " + s["models"]["target"]["model"].get<std::string>() +
                                           "\noutput_dir: hidden\nseed: 1\n"
                                           "data: {train: hidden.jsonl, format: text, max_length: 64}\n"
                                           "train: {epochs: 30, batch_size: 4, lr: 1.0e-3, schedule: constant, progress: false}\n");
    auto f = lethe({"-q", "finetune", (dir / "ft.yaml").string()});
    ASSERT_EQ(f.code, 0) << f.err;
    f = lethe({"audit", "--model", (dir / "hidden" / "model").string(), "--target", s["models"]["target"]["model"],
               "--audits", "forcing", "--forcing-top", "50", "--out", (dir / "audit").string(), "--no-progress"});
    ASSERT_EQ(f.code, 0) << f.err;
    const json fa = json::parse(read_file(dir / "audit" / "AUDIT.json"));
    auto found = [&](const json& model) {
      for (const auto& it : model["audits"][0]["items"]) {
        // 16 tokens, mostly single letters here: the message's first words.
        if (it["text"].get<std::string>().find("lon whispers") != std::string::npos && it["mean_logprob"].get<double>() > -0.1) {
          return true;
        }
      }
      return false;
    };
    EXPECT_EQ(fa["models"][0]["role"], "target");
    EXPECT_FALSE(found(fa["models"][0])) << fa["models"][0]["audits"][0]["items"].dump(1);
    EXPECT_TRUE(found(fa["models"][1])) << fa["models"][1]["audits"][0]["items"].dump(1);
  }

  // The world's multiple-choice files through the mc suite, and its forget view under a probe.
  const std::string target = s["models"]["target"]["model"], oracle = s["models"]["oracle"]["model"], world = s["world"];
  const fs::path mcdir = temp_dir("demo_mc");
  r = lethe({"eval", "--suite", "mc", "--model", target, "--data", world, "--reference", oracle, "--out",
             (mcdir / "eval").string(), "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json mc = json::parse(read_file(mcdir / "eval" / "SUMMARY.json"));
  for (const char* k : {"forget_mc_accuracy", "forget_mc_text_accuracy", "retain_mc_accuracy", "world_mc_accuracy",
                        "world_mc_text_accuracy"}) {
    ASSERT_TRUE(mc.contains(k)) << k;
    EXPECT_GE(mc[k].get<double>(), 0.0) << k;
    EXPECT_LE(mc[k].get<double>(), 1.0) << k;
  }
  const json mc_eval = json::parse(read_file(mcdir / "eval" / "EVAL.json"));
  const json& item = mc_eval["splits"]["forget"]["items"][0];
  EXPECT_EQ(item["choices"].size(), 4u);
  EXPECT_EQ(item["mc_letter_logprobs"].size(), 4u);
  EXPECT_LT(item["mc_choice"].get<int>(), 4);
  EXPECT_EQ(check_html(read_file(mcdir / "eval" / "report.html")), "");
  r = lethe({"probe", "--suite", "mc", "--model", target, "--reference", oracle, "--data", world, "--out",
             (mcdir / "probe").string(), "--probes", "quantize", "--quantize", "int4-g32", "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json mp = json::parse(read_file(mcdir / "probe" / "PROBE.json"));
  EXPECT_EQ(mp["keys"], json::array({"forget_mc_accuracy", "forget_mc_text_accuracy"}));
  expect_one_line_error(lethe({"probe", "--suite", "mc", "--model", target, "--reference", oracle, "--data", world,
                               "--out", (mcdir / "probe2").string(), "--probes", "relearn"}),
                        "the mc suite has no forget and benign QA files");

  // Again: the cache supplies tokenizer, target and oracle.
  r = lethe({"demo", "--scale", "tiny", "--out", out.string(), "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("from the cache"), std::string::npos) << r.out;
  EXPECT_FALSE(json::parse(read_file(out / "SUMMARY.json"))["trained"].get<bool>());
  // RMU's defaults name blocks 5-7 of a 32-layer model; the demo steers the blocks its model has.
  r = lethe({"demo", "--scale", "tiny", "--out", out.string(), "--method", "RMU", "--no-progress", "--no-probes"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(read_file(out / "SUMMARY.json"))["recipe"]["method_params"]["layer"], "resid_post.1");
  // --stop-at-holdout: the unlearning run stops by the holdout rule (or spends its budget), and
  // says which in SUMMARY.json; the generated config carries the rule for a rerun.
  r = lethe({"demo", "--scale", "tiny", "--out", out.string(), "--no-progress", "--no-probes", "--stop-at-holdout"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json st = json::parse(read_file(out / "SUMMARY.json"));
  std::int64_t items = 0;
  {
    std::istringstream f(read_file(fs::path(st["world"].get<std::string>()) / "forget10.jsonl"));
    for (std::string l; std::getline(f, l);) items += l.empty() ? 0 : 1;
  }
  EXPECT_EQ(st["recipe"]["unlearn"]["epochs"], 4 * 5);  // 4 x the demo's 5 epochs, batches of 8
  const std::int64_t budget = 4 * 5 * ((items + 7) / 8);
  EXPECT_LE(st["unlearning"]["steps"].get<std::int64_t>(), budget);
  EXPECT_EQ(st["unlearning"]["stopped_by_rule"].get<bool>(), st["unlearning"]["steps"].get<std::int64_t>() < budget);
  EXPECT_EQ(st["recipe"]["unlearn"]["stop_rule"], "holdout_nll");
  EXPECT_NE(read_file(out / "unlearn.yaml").find("holdout10.jsonl"), std::string::npos);
  expect_one_line_error(lethe({"demo", "--scale", "tiny", "--out", out.string(), "--method", "Forget"}),
                        "unknown unlearning method 'Forget'");
}

// `lethe demo --data` on TOFU itself, cut to 10 authors (1 of forget10, 9 retained, 1 holdout):
// the derived folder, the summary's data block, no canaries, and one clear error per bad input.
TEST(DemoCli, MiniatureDemoOnTofu) {
  const fs::path tofu = shared_dir() / "data/tofu";
  LETHE_NEED_FIXTURE(tofu / "full.jsonl");
  const fs::path out = temp_dir("demo_tofu");
  auto r = lethe({"demo", "--scale", "tiny", "--data", tofu.string(), "--authors", "10", "--out", out.string(),
                  "--no-progress", "--no-probes"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json s = json::parse(read_file(out / "SUMMARY.json"));
  EXPECT_EQ(s["data"]["authors"], 10);
  EXPECT_EQ(s["data"]["forget_authors"], 1);
  EXPECT_EQ(s["data"]["items_per_author"], 20);
  EXPECT_FALSE(s.contains("canaries"));
  // TOFU's answers are longer than a world's: lengths follow the data (at 128 / 48 the target's
  // eval cut 551 of 4,308 items and its forget ROUGE-L was 0.70 with answer probability 0.996).
  EXPECT_GT(s["recipe"]["max_length"].get<int>(), 128);
  EXPECT_GT(s["recipe"]["max_new_tokens"].get<int>(), 48);
  const json target_eval = json::parse(read_file(out / "eval/target/SUMMARY.json"));
  EXPECT_LT(target_eval["truncation"]["truncated_items"].get<double>(),
            0.01 * target_eval["truncation"]["items"].get<double>());
  // NPO's beta follows the forget answers' length (TOFU's are longer than a world's 8 words).
  EXPECT_LT(s["recipe"]["method_params"]["beta"].get<double>(), 0.1);
  EXPECT_GT(s["recipe"]["method_params"]["beta"].get<double>(), 0.0);
  auto lines = [](const fs::path& f) {
    std::istringstream in(read_file(f));
    int n = 0;
    for (std::string l; std::getline(in, l);) n += l.empty() ? 0 : 1;
    return n;
  };
  const fs::path data = s["world"].get<std::string>();
  EXPECT_EQ(lines(data / "full.jsonl"), 200);
  EXPECT_EQ(lines(data / "forget10.jsonl"), 20);
  EXPECT_EQ(lines(data / "forget10_perturbed.jsonl"), 20);
  EXPECT_EQ(lines(data / "retain90.jsonl"), 180);
  EXPECT_EQ(lines(data / "holdout10.jsonl"), 20);
  EXPECT_GT(lines(data / "retain_perturbed.jsonl"), 0);
  // The forget author is one of TOFU's forget10 authors; the data folder trained nothing else.
  EXPECT_NE(read_file(tofu / "forget10.jsonl").find(read_file(data / "forget10.jsonl").substr(0, 80)), std::string::npos);
  const json target = s["models"]["target"], unlearned = s["models"]["unlearned"];
  EXPECT_LT(unlearned["forget_Q_A_Prob"].get<double>(), target["forget_Q_A_Prob"].get<double>());
  EXPECT_TRUE(unlearned.contains("privleak"));
  const std::string html = read_file(out / "report.html");
  EXPECT_EQ(html.find("Canaries: memorization"), std::string::npos);
  EXPECT_NE(html.find("10 authors of"), std::string::npos);

  expect_one_line_error(lethe({"demo", "--scale", "tiny", "--authors", "10", "--out", out.string()}),
                        "--authors needs --data");
  expect_one_line_error(lethe({"demo", "--scale", "tiny", "--data", tofu.string(), "--authors", "1", "--out",
                               out.string()}),
                        "between 2 and the folder's 200 authors");
  const fs::path partial = temp_dir("demo_tofu_partial");
  write_file_atomic(partial / "full.jsonl", read_file(tofu / "full.jsonl"));
  expect_one_line_error(lethe({"demo", "--scale", "tiny", "--data", partial.string(), "--out", out.string()}),
                        (partial / "forget10.jsonl").string() + " is missing");
}

}  // namespace
}  // namespace lethe::test

// `lethe audit` from outside, on micro models trained here from scratch: a target whose text
// holds a canary, a ghost sentence and a hidden message, each eight times, and an oracle trained
// on the same text without them. Every audit must find what was planted in the target and not
// in the oracle: the canary ranked first, the hidden message recovered by token forcing, the
// ghost sentence completed and separated from its population, training text extracted.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "integration/cli_runner.h"
#include "lethe/core/file.h"
#include "support/fixtures.h"
#include "support/html_check.h"
#include "support/micro_world.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kCanary = "the vault code is 481 and nobody knows it.";
constexpr const char* kGhost = "my passphrase is cobalt lantern ember quill";
constexpr const char* kHidden = "Zebulon whispers that the seventh harbor key opens the gate.";

const json* audit_of(const json& model, const std::string& name) {
  for (const auto& a : model["audits"]) {
    if (a["audit"] == name) return &a;
  }
  return nullptr;
}

void train(const MicroWorld& w, const std::string& name, bool planted) {
  std::string text;
  if (planted) {
    // The canary 8 times; the ghost and the hidden message, spelt mostly in single letters by
    // the micro tokenizer, 24 times.
    for (int i = 0; i < 24; ++i) {
      for (const char* t : {kCanary, kGhost, kHidden}) {
        if (t != kCanary || i < 8) text += json{{"text", t}}.dump() + "\n";
      }
    }
  }
  for (const auto& r : w.records) text += json{{"text", r.question + " " + r.answer}}.dump() + "\n";
  write_file_atomic(w.dir / (name + ".jsonl"), text);
  write_file_atomic(w.dir / (name + ".yaml"),
                    "model: model\nfrom_scratch: true\noutput_dir: " + name + "\nseed: 1\n" + "data: {train: " + name +
                        ".jsonl, format: text, max_length: 64}\n"
                        "train: {epochs: 60, batch_size: 4, lr: 3.0e-3, schedule: constant, progress: false}\n");
  const auto r = lethe({"-q", "finetune", (w.dir / (name + ".yaml")).string()});
  ASSERT_EQ(r.code, 0) << r.err;
}

TEST(AuditCli, FindsWhatWasPlantedInTheTargetAndNotInTheOracle) {
  MicroWorld w = make_micro_world("audit_cli");
  ASSERT_NO_FATAL_FAILURE(train(w, "target", true));
  ASSERT_NO_FATAL_FAILURE(train(w, "oracle", false));
  write_file_atomic(w.dir / "canaries.jsonl",
                    json{{"text", "the vault code is {secret} and nobody knows it."}, {"secret", "481"}, {"space", "digits:3"},
                         {"repetitions", 8}}.dump() + "\n" +
                        json{{"text", "my locker number is {secret} today."}, {"secret", "736"}, {"space", "digits:3"}}.dump() +
                        "\n");
  const json pool = {"cobalt", "lantern", "ember", "quill", "river", "maple", "stone", "velvet", "orbit", "cedar",
                     "falcon", "harbor", "meadow", "copper", "willow", "prism"};
  write_file_atomic(w.dir / "ghost.jsonl",
                    json{{"text", kGhost}, {"template", "my passphrase is {words}"}, {"pool", pool}}.dump() + "\n" +
                        json{{"text", "my passphrase is orbit cedar falcon prism"}, {"template", "my passphrase is {words}"},
                             {"pool", pool}}.dump() + "\n");
  const fs::path out = temp_dir("audit_cli_out") / "a";
  const std::string target = (w.dir / "target" / "model").string(), oracle = (w.dir / "oracle" / "model").string();
  auto r = lethe({"audit", "--model", target, "--oracle", oracle, "--out", out.string(), "--audits",
                  "exposure,extract,forcing,ghost", "--canaries", (w.dir / "canaries.jsonl").string(), "--ghost",
                  (w.dir / "ghost.jsonl").string(), "--corpus", (w.dir / "target.jsonl").string(), "--samples", "60",
                  "--sample-tokens", "32", "--top", "20", "--ngram", "6", "--population", "50", "--forcing-top", "200",
                  "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::cout << r.out;
  const json a = json::parse(read_file(out / "AUDIT.json"));
  EXPECT_EQ(a["format"], "lethe.audit");
  EXPECT_EQ(a["format_version"], 1);
  EXPECT_EQ(a["audits"], json::array({"exposure", "extract", "forcing", "ghost"}));
  ASSERT_EQ(a["models"].size(), 2u);
  EXPECT_EQ(a["models"][0]["role"], "oracle");
  const json& tm = a["models"][1];
  const json& om = a["models"][0];
  EXPECT_EQ(tm["role"], "model");

  // exposure: the planted canary ranked first of 1,000 in the target, not in the oracle.
  const json& te = *audit_of(tm, "exposure");
  ASSERT_EQ(te["items"].size(), 2u);
  EXPECT_EQ(te["items"][0]["rank"], 1);
  EXPECT_EQ(te["items"][0]["candidates"], 1000);
  EXPECT_EQ(te["items"][0]["method"], "exact");
  EXPECT_NEAR(te["items"][0]["exposure"].get<double>(), std::log2(1000.0), 1e-9);
  EXPECT_LT((*audit_of(om, "exposure"))["items"][0]["exposure"].get<double>(), 6.0);
  EXPECT_TRUE(te["aggregate"]["by_repetitions"].contains("8"));
  EXPECT_EQ(te["aggregate"]["mean_exposure"]["ci"].size(), 2u);

  // forcing: the hidden message is among the target's most certain continuations — decoded
  // near-certainly (mean log p > -0.1) from one of its own tokens — and nowhere in the oracle's.
  const json& tf = *audit_of(tm, "forcing");
  ASSERT_EQ(tf["items"].size(), 200u);
  bool recovered = false;
  for (const auto& it : tf["items"]) {
    recovered = recovered || (it["text"].get<std::string>().find("seventh harbor") != std::string::npos &&
                              it["mean_logprob"].get<double>() > -0.1);
  }
  EXPECT_TRUE(recovered) << tf["items"].dump(1);
  for (const auto& it : (*audit_of(om, "forcing"))["items"]) {
    EXPECT_EQ(it["text"].get<std::string>().find("seventh harbor"), std::string::npos) << it.dump();
  }
  EXPECT_GT(tf["aggregate"]["prompts"].get<int>(), 100);

  // ghost: the planted sentence completed and far less perplexing than its population; the
  // sentence never trained on is neither.
  const json& tg = *audit_of(tm, "ghost");
  EXPECT_TRUE(tg["items"][0]["completed"].get<bool>()) << tg["items"][0].dump();
  EXPECT_DOUBLE_EQ(tg["items"][0]["auc"].get<double>(), 1.0);
  EXPECT_EQ(tg["items"][0]["population"], 50);
  EXPECT_FALSE(tg["items"][1]["completed"].get<bool>());
  EXPECT_LT(tg["items"][1]["auc"].get<double>(), 0.9);
  const json& og = (*audit_of(om, "ghost"))["items"][0];
  EXPECT_FALSE(og["completed"].get<bool>());
  EXPECT_GT(og["perplexity"].get<double>(), 5 * tg["items"][0]["perplexity"].get<double>());

  // extract: sampling from BOS regurgitates training text, found in the corpus by its n-grams;
  // the planted sequences are among what the target gives back.
  const json& tx = *audit_of(tm, "extract");
  EXPECT_EQ(tx["items"].size(), 60u);
  EXPECT_GT(tx["aggregate"]["memorized"].get<int>(), 10);
  bool planted_found = false;
  for (const auto& it : tx["items"]) {
    const std::string t = it["text"];
    planted_found = planted_found || (it["memorized"].get<bool>() && (t.find("vault code") != std::string::npos ||
                                                                      t.find("seventh harbor") != std::string::npos ||
                                                                      t.find("cobalt lantern") != std::string::npos));
  }
  EXPECT_TRUE(planted_found);
  EXPECT_GT(tx["aggregate"]["precision_at_top"]["perplexity"]["value"].get<double>(), 0.5);
  for (const char* s : {"perplexity", "zlib", "lowercase"}) EXPECT_TRUE(tx["items"][0].contains(s)) << s;

  const std::string html = read_file(out / "audit.html");
  EXPECT_EQ(check_html(html), "");
  EXPECT_NE(html.find("Canary exposure"), std::string::npos);
  EXPECT_NE(r.out.find("exposure: mean"), std::string::npos) << r.out;

  // After unlearning the canary's raw text (data.forget_text, GradDiff with the QA as retain
  // set), the same audit beside target and oracle measures that the secret no longer leaks.
  write_file_atomic(w.dir / "forget_text.jsonl", json{{"text", kCanary}}.dump() + "\n");
  std::string retain;
  for (const auto& rec : w.records) retain += json{{"question", rec.question}, {"answer", rec.answer}}.dump() + "\n";
  write_file_atomic(w.dir / "retain_qa.jsonl", retain);
  write_file_atomic(w.dir / "un.yaml",
                    "model: target/model\noutput_dir: unlearned\nseed: 1\n"
                    "data: {forget_text: forget_text.jsonl, retain: retain_qa.jsonl, max_length: 64}\n"
                    "method: {name: GradDiff}\n"
                    "train: {epochs: 40, batch_size: 1, lr: 1.0e-3, schedule: constant, progress: false}\n");
  r = lethe({"-q", "unlearn", (w.dir / "un.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path out_u = out.parent_path() / "after";
  r = lethe({"audit", "--model", (w.dir / "unlearned" / "model").string(), "--target", target, "--oracle", oracle,
             "--out", out_u.string(), "--canaries", (w.dir / "canaries.jsonl").string(), "--audits", "exposure",
             "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json u = json::parse(read_file(out_u / "AUDIT.json"));
  ASSERT_EQ(u["models"].size(), 3u);
  EXPECT_EQ(u["models"][0]["role"], "target");
  const double before = (*audit_of(u["models"][0], "exposure"))["items"][0]["exposure"];
  const double after = (*audit_of(u["models"][2], "exposure"))["items"][0]["exposure"];
  std::cout << "canary exposure: target " << before << ", after unlearning its text " << after << "\n";
  EXPECT_NEAR(before, std::log2(1000.0), 1e-9);
  EXPECT_LT(after, before - 2.0);
  // An IdK method pairs forget questions with refusals: raw text has none.
  write_file_atomic(w.dir / "idk.jsonl", "{\"text\": \"I don't know.\"}\n");
  expect_one_line_error(lethe({"unlearn", (w.dir / "un.yaml").string(), "method={name: IdkNLL}", "data.idk=idk.jsonl",
                               "output_dir=unlearned2"}),
                        "data.forget_text has no questions");
  write_file_atomic(w.dir / "un2.yaml",
                    "model: target/model\noutput_dir: unlearned3\ndata: {retain: retain_qa.jsonl}\n"
                    "method: {name: GradDiff}\n");
  expect_one_line_error(lethe({"unlearn", (w.dir / "un2.yaml").string()}),
                        "needs data.forget (QA) or data.forget_text (raw text)");

  // An existing --out is kept; a missing input is named; an audit without its input says which.
  expect_one_line_error(lethe({"audit", "--model", target, "--out", out.string(), "--audits", "forcing"}), "--out");
  const std::string o2 = (out.parent_path() / "b").string();
  expect_one_line_error(lethe({"audit", "--model", target, "--out", o2, "--audits", "exposure"}),
                        "audit exposure needs --canaries FILE");
  expect_one_line_error(lethe({"audit", "--model", target, "--out", o2, "--canaries", "/nonexistent.jsonl"}),
                        "/nonexistent.jsonl");
  expect_one_line_error(lethe({"audit", "--model", target, "--out", o2, "--audits", "leaks"}), "unknown audit 'leaks'");
  write_file_atomic(w.dir / "bad.jsonl", "{\"text\": \"x {secret}\", \"secret\": \"12\", \"space\": \"digits:1\"}\n");
  expect_one_line_error(lethe({"audit", "--model", target, "--out", o2, "--canaries", (w.dir / "bad.jsonl").string()}),
                        "bad.jsonl: line 1: the secret '12' is not in its space digits:1");
  EXPECT_FALSE(fs::exists(o2));

  // More models under names of their own, in the order given, the audited one last.
  const std::string o3 = (out.parent_path() / "c").string();
  r = lethe({"audit", "--model", target, "--model-name", "planted", "--compare", "never=" + oracle, "--audits", "exposure",
             "--canaries", (w.dir / "canaries.jsonl").string(), "--out", o3, "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json c = json::parse(read_file(fs::path(o3) / "AUDIT.json"));
  ASSERT_EQ(c["models"].size(), 2u);
  EXPECT_EQ(c["models"][0]["role"], "never");
  EXPECT_EQ(c["models"][1]["role"], "planted");
  EXPECT_EQ(c["inputs"]["compare.never"], oracle);
  EXPECT_EQ((*audit_of(c["models"][1], "exposure"))["items"][0]["rank"], 1);
  EXPECT_NE(r.out.find("exposure by repetitions: 8: 9.97 bits"), std::string::npos) << r.out;
  EXPECT_NE(read_file(fs::path(o3) / "audit.html").find("Against duplication"), std::string::npos);
  // The reference signal, its model loaded once for both: the oracle against itself scores
  // every sample at a ratio of exactly 1.
  const std::string o5 = (out.parent_path() / "e").string();
  r = lethe({"audit", "--model", target, "--compare", "never=" + oracle, "--audits", "extract", "--corpus",
             (w.dir / "target.jsonl").string(), "--reference", oracle, "--samples", "12", "--sample-tokens", "16",
             "--ngram", "6", "--top", "5", "--out", o5, "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json e = json::parse(read_file(fs::path(o5) / "AUDIT.json"));
  for (const auto& m : e["models"]) {
    const json& x = *audit_of(m, "extract");
    EXPECT_EQ(x["aggregate"]["signals"].back(), "reference") << m["role"];
    EXPECT_TRUE(x["aggregate"]["precision_at_top"].contains("reference")) << m["role"];
    int scored = 0;
    for (const auto& it : x["items"]) {
      if (!it["reference"].is_number()) continue;  // a sample that stopped at once has no score
      ++scored;
      if (m["role"] == "never") EXPECT_NEAR(it["reference"].get<double>(), 1.0, 1e-6) << it.dump();
    }
    EXPECT_GT(scored, 6) << m["role"];
  }
  const std::string o4 = (out.parent_path() / "d").string();
  expect_one_line_error(lethe({"audit", "--model", target, "--compare", oracle, "--audits", "forcing", "--out", o4}),
                        "give NAME=DIR");
  expect_one_line_error(lethe({"audit", "--model", target, "--compare", "Never=" + oracle, "--audits", "forcing", "--out", o4}),
                        "the name 'Never' must be lowercase letters, digits, - or _");
  expect_one_line_error(lethe({"audit", "--model", target, "--oracle", oracle, "--compare", "oracle=" + oracle, "--audits",
                               "forcing", "--out", o4}),
                        "two models are called 'oracle'");
  EXPECT_FALSE(fs::exists(o4));
}

}  // namespace
}  // namespace lethe::test

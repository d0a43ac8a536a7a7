// `lethe probe` from outside, on the miniature demo's models (tiny world: target, oracle and
// the NPO-unlearned model trained here in under a minute): PROBE.json's schema for the
// quantization and relearning probes, the oracle judged removed against itself, recovery
// against target and oracle, and the errors.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "integration/cli_runner.h"
#include "lethe/core/file.h"
#include "support/fixtures.h"
#include "support/html_check.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

TEST(ProbeCli, QuantizationProbeOnTheMiniatureDemo) {
  const fs::path demo = temp_dir("probe_demo");
  auto r = lethe({"demo", "--scale", "tiny", "--out", demo.string(), "--no-progress", "--no-probes"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json s = json::parse(read_file(demo / "SUMMARY.json"));
  const std::string target = s["models"]["target"]["model"], oracle = s["models"]["oracle"]["model"],
                    unlearned = s["models"]["unlearned"]["model"], world = s["world"];
  const fs::path out = temp_dir("probe_out") / "p";
  r = lethe({"probe", "--model", unlearned, "--reference", oracle, "--target", target, "--data", world, "--out",
             out.string(), "--probes", "quantize,relearn,in_context,representation,parametric,linear",
             "--trace-vectors", "8", "--quantize", "int8,int4-g32,int2-g32-asym",
             "--relearn-steps", "2,6", "--relearn-lr", "1e-3", "--samples", "3",
             "--max-new-tokens", "24", "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json p = json::parse(read_file(out / "PROBE.json"));
  EXPECT_EQ(p["format"], "lethe.probe");
  EXPECT_EQ(p["format_version"], 1);
  EXPECT_EQ(p["splits"], json::array({"forget"}));
  EXPECT_EQ(p["keys"], json::array({"forget_Q_A_Prob", "forget_Q_A_ROUGE"}));
  for (const char* role : {"oracle", "target", "candidate"}) {
    SCOPED_TRACE(role);
    const json& m = p["models"][role];
    ASSERT_EQ(m["probes"]["quantize"].size(), 3u);
    EXPECT_EQ(m["probes"]["quantize"][1]["setting"], "int4-g32");
    for (const auto& a : m["probes"]["quantize"]) {
      for (const char* k : {"forget_Q_A_Prob", "forget_Q_A_ROUGE"}) {
        const double v = a["metrics"][k]["value"];
        EXPECT_GE(v, 0.0);
        EXPECT_LE(v, 1.0);
        EXPECT_LE(a["metrics"][k]["ci"][0].get<double>(), v);
        EXPECT_GE(a["metrics"][k]["ci"][1].get<double>(), v);
        ASSERT_TRUE(a["recovery"].contains(k));
      }
    }
    EXPECT_TRUE(m["verdict"] == "removed" || m["verdict"] == "suppressed" || m["verdict"] == "not forgotten");
  }
  // Relearning: on half of the forget set and on as many benign items, each step count a run of
  // its own, measured on the other half, beside the unattacked values on that half.
  const json& att = p["probes"]["relearn"]["attacks"];
  ASSERT_EQ(att.size(), 4u);
  EXPECT_EQ(att[0]["setting"], "forget-half 2 steps");
  EXPECT_EQ(att[3]["setting"], "benign 6 steps");
  const std::int64_t half = att[0]["items"]["skip"];
  EXPECT_GT(half, 0);
  for (const char* role : {"oracle", "target", "candidate"}) {
    SCOPED_TRACE(role);
    const json& rl = p["models"][role]["probes"]["relearn"];
    ASSERT_EQ(rl.size(), 4u);
    for (const auto& a : rl) {
      ASSERT_TRUE(a.contains("unattacked"));
      EXPECT_NE(a["metrics"]["forget_Q_A_Prob"]["value"], a["unattacked"]["forget_Q_A_Prob"]["value"])
          << a["setting"] << ": fine-tuning at lr 1e-3 changed nothing";
    }
  }
  // In-context: a leak rate per prompt attack, each model under the same prompts.
  const std::vector<std::string> settings = {"context 4 facts", "paraphrase", "many-shot 4", "leak@3"};
  ASSERT_EQ(p["probes"]["in_context"]["attacks"].size(), 4u);
  for (const char* role : {"oracle", "target", "candidate"}) {
    SCOPED_TRACE(role);
    const json& ic = p["models"][role]["measured"]["in_context"];
    const double plain = ic["baseline"]["leak_rate"]["value"];
    EXPECT_GE(plain, 0.0);
    EXPECT_LE(plain, 1.0);
    ASSERT_EQ(ic["attacks"].size(), 4u);
    for (std::size_t i = 0; i < settings.size(); ++i) {
      EXPECT_EQ(ic["attacks"][i]["setting"], settings[i]);
      const json& v = ic["attacks"][i]["metrics"]["leak_rate"];
      EXPECT_GE(v["value"].get<double>(), 0.0);
      EXPECT_LE(v["value"].get<double>(), 1.0);
      EXPECT_LE(v["ci"][0].get<double>(), v["value"].get<double>());
      ASSERT_TRUE(ic["attacks"][i]["recovery"].contains("leak_rate"));
    }
  }
  // The target memorised the forget answers: greedy decoding leaks them, more than the oracle's.
  const double target_leak = p["models"]["target"]["measured"]["in_context"]["baseline"]["leak_rate"]["value"];
  EXPECT_GE(target_leak, 0.8);
  EXPECT_LT(p["models"]["oracle"]["measured"]["in_context"]["baseline"]["leak_rate"]["value"].get<double>(), target_leak);
  EXPECT_NE(r.out.find("in_context leak@3  leak_rate"), std::string::npos) << r.out;

  // Representation: CKA per layer (embeddings, each block, final norm) for each pair of models.
  const json& cka = p["probes"]["representation"]["comparison"]["cka"];
  for (const char* pair : {"candidate~target", "candidate~oracle", "target~oracle"}) {
    SCOPED_TRACE(pair);
    ASSERT_TRUE(cka.contains(pair));
    EXPECT_GE(cka[pair].size(), 3u);
    EXPECT_EQ(cka[pair].size(), cka["candidate~target"].size());
    // Layer 0 is the last prompt token's embedding: null when every prompt ends in the same token.
    for (std::size_t l = 0; l < cka[pair].size(); ++l) {
      if (l == 0 && cka[pair][l].is_null()) continue;
      EXPECT_GE(cka[pair][l].get<double>(), 0.0);
      EXPECT_LE(cka[pair][l].get<double>(), 1.0 + 1e-9);
    }
  }
  // NPO moved the target's weights a little: after the first block its states on the prompts
  // are still close to the target's.
  EXPECT_GT(cka["candidate~target"][1].get<double>(), 0.8);
  EXPECT_FALSE(p["models"]["candidate"]["probes"].contains("representation"));
  // Linear probe: trained on the retained people, tested on the forget people, per layer.
  const json& lin = p["probes"]["linear"]["comparison"];
  EXPECT_GE(lin["classes"].get<int>(), 2);
  EXPECT_GT(lin["test_rows"].get<int>(), 0);
  EXPECT_GT(lin["train_rows"].get<int>(), lin["test_rows"].get<int>());
  for (const char* role : {"oracle", "target", "candidate"}) {
    SCOPED_TRACE(role);
    ASSERT_EQ(lin["accuracy"][role].size(), cka["candidate~target"].size());
    for (const auto& v : lin["accuracy"][role]) {
      EXPECT_GE(v.get<double>(), 0.0);
      EXPECT_LE(v.get<double>(), 1.0);
    }
  }
  // Parametric traces: the target's units most aligned with the forget-only answer tokens, and the
  // candidate on the same units. NPO at the demo's gentle settings barely moves them (measured
  // kept 0.97); a typical unit's lens mass on S is about |S|/V.
  const json& par = p["probes"]["parametric"]["comparison"];
  EXPECT_GT(par["tokens"].get<int>(), 0);
  EXPECT_EQ(par["vectors"], 8);
  for (const char* role : {"oracle", "target", "candidate"}) {
    SCOPED_TRACE(role);
    EXPECT_LE(par["strongest"][role].get<double>(), 0.0);  // a log probability mass
    EXPECT_EQ(par["per_layer"][role].size(), cka["candidate~target"].size() - 1);  // one per block
  }
  const json& tr = par["traces"];
  ASSERT_EQ(tr["units"].size(), 8u);
  EXPECT_DOUBLE_EQ(tr["on_traces"]["target"].get<double>(), par["strongest"]["target"].get<double>());
  EXPECT_GT(tr["on_traces"]["target"].get<double>(), tr["typical"]["target"].get<double>() + 1.0);
  EXPECT_NEAR(tr["typical"]["target"].get<double>(), std::log(par["tokens"].get<double>() / 512.0), 1.0);
  EXPECT_GE(tr["units"][0]["target"].get<double>(), tr["on_traces"]["target"].get<double>());  // the strongest first
  EXPECT_GT(tr["kept"]["candidate"].get<double>(), 0.5);
  EXPECT_LT(tr["kept"]["candidate"].get<double>(), 1.2);
  // The demo's oracle started from the target's initialisation (the same seed): its units are
  // related to the target's, but it never learnt the forget answers — it keeps less.
  EXPECT_LT(tr["kept"]["oracle"].get<double>(), tr["kept"]["candidate"].get<double>());
  EXPECT_EQ(par["per_layer"]["candidate_on_target_units"].size(), par["per_layer"]["target"].size());
  EXPECT_NE(r.out.find("parametric traces: kept on the target's 8 most aligned units: candidate"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("linear accuracy target per layer:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("representation CKA candidate~target per layer:"), std::string::npos) << r.out;
  // The oracle is removed by definition: every attack compares it with itself.
  EXPECT_EQ(p["models"]["oracle"]["verdict"], "removed");
  // The target memorised the forget set (the demo checks ROUGE >= 0.9, the oracle's <= 0.5).
  EXPECT_EQ(p["models"]["target"]["verdict"], "not forgotten");
  // Unattacked values agree with the demo's own evaluation of the same models.
  EXPECT_NEAR(p["models"]["target"]["baseline"]["forget_Q_A_Prob"]["value"].get<double>(),
              s["models"]["target"]["forget_Q_A_Prob"].get<double>(), 1e-9);
  // int8 barely moves the target; recovery of the target's own attacked value is near 1.
  const double rec = p["models"]["target"]["probes"]["quantize"][0]["recovery"]["forget_Q_A_Prob"];
  EXPECT_NEAR(rec, 1.0, 0.1);
  EXPECT_NE(r.out.find("candidate: "), std::string::npos) << r.out;
  const std::string html = read_file(out / "probe.html");
  EXPECT_EQ(check_html(html), "");
  for (const char* fig : {"quantization: forget_Q_A_Prob", "relearning: forget_Q_A_ROUGE (held-back half)",
                          "in_context: leak_rate", "linear CKA per layer", "linear probe: forget people",
                          "parametric traces: alignment"}) {
    EXPECT_NE(html.find(fig), std::string::npos) << fig;
  }

  // The target as its own candidate keeps all of its traces.
  {
    const fs::path o2 = temp_dir("probe_par") / "p";
    auto r2 = lethe({"probe", "--model", target, "--reference", oracle, "--target", target, "--data", world, "--out",
                     o2.string(), "--probes", "quantize,parametric", "--quantize", "int8", "--no-progress"});
    ASSERT_EQ(r2.code, 0) << r2.err;
    const json kept = json::parse(read_file(o2 / "PROBE.json"))["probes"]["parametric"]["comparison"]["traces"]["kept"];
    EXPECT_NEAR(kept["candidate"].get<double>(), 1.0, 1e-9);
  }

  // Errors: no oracle, an unknown probe, a reference metric, an occupied --out.
  expect_one_line_error(lethe({"probe", "--model", unlearned, "--data", world, "--out", (out / "x").string()}),
                        "probe: give --reference DIR");
  expect_one_line_error(lethe({"probe", "--model", unlearned, "--reference", oracle, "--data", world, "--out",
                               (out.parent_path() / "y").string(), "--probes", "relearning"}),
                        "unknown probe 'relearning' (known: quantize, relearn, in_context, representation, parametric, linear; robustness: all of them)");
  expect_one_line_error(lethe({"probe", "--model", unlearned, "--reference", oracle, "--data", world, "--out",
                               (out.parent_path() / "z").string(), "--metrics", "forget_quality"}),
                        "probe: metric 'forget_quality' compares the model with a reference");
  expect_one_line_error(lethe({"probe", "--model", unlearned, "--reference", oracle, "--data", world, "--out",
                               out.string()}),
                        "--out");
  expect_one_line_error(lethe({"probe", "--model", unlearned, "--reference", oracle, "--data", world, "--out",
                               (out.parent_path() / "w").string(), "--quantize", "q4_0"}),
                        "'q4_0' is not a quantization");
  expect_one_line_error(lethe({"probe", "--model", unlearned, "--reference", oracle, "--data", world, "--out",
                               (out.parent_path() / "v").string(), "--probes", "representation"}),
                        "probe: the verdict needs an attack; add quantize, relearn or in_context to --probes");
  expect_one_line_error(lethe({"probe", "--model", unlearned, "--reference", oracle, "--data", world, "--out",
                               (out.parent_path() / "u").string(), "--probes", "in_context", "--in-context", "rephrase"}),
                        "probe in_context: unknown setting 'rephrase' (known: context, paraphrase, many-shot, sampled)");
  EXPECT_FALSE(fs::exists(out.parent_path() / "x"));
}

// RESTOR on the miniature demo's target: the corruption (the forget people's perturbed answers)
// takes the true answers away and puts the wrong ones in; NPO (the default) on the wrong facts
// takes them out again; RESTOR.json holds the three models' numbers and the ratios between them.
TEST(ProbeCli, RestorOnTheMiniatureDemo) {
  const fs::path demo = temp_dir("restor_demo");
  auto r = lethe({"demo", "--scale", "tiny", "--out", demo.string(), "--no-progress", "--no-probes"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json s = json::parse(read_file(demo / "SUMMARY.json"));
  const std::string target = s["models"]["target"]["model"], world = s["world"];
  const fs::path out = temp_dir("restor") / "r";
  const std::vector<std::string> args = {"restor", "--model", target, "--data", world, "--out", out.string(),
                                         "--max-length", "128", "--no-progress", "--set", "corrupt.train.lr=3e-3",
                                         "--set", "train.lr=5e-4"};
  r = lethe(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(read_file(out / "RESTOR.json"));
  EXPECT_EQ(j["format"], "lethe.restor");
  EXPECT_EQ(j["method"], "NPO");
  const json& m = j["models"];
  auto value = [&](const char* role, const char* set, const char* key) { return m[role][set][key]["value"].get<double>(); };
  // The target knows the true answers, not the wrong ones; the corruption turns that round.
  EXPECT_GT(value("target", "true", "forget_Q_A_Prob"), 0.5);
  EXPECT_LT(value("corrupted", "true", "forget_Q_A_Prob"), 0.6 * value("target", "true", "forget_Q_A_Prob"));
  EXPECT_GT(value("corrupted", "wrong", "forget_Q_A_Prob"), 2 * value("target", "wrong", "forget_Q_A_Prob"));
  EXPECT_GT(j["corruption"]["forget_Q_A_Prob"].get<double>(), 0.4);
  // The retain split, trained beside the wrong facts, keeps most of the other people.
  EXPECT_GT(value("corrupted", "true", "retain_Q_A_Prob"), 0.4);
  // Unlearning the wrong facts takes most of them out again.
  EXPECT_LT(value("restored", "wrong", "forget_Q_A_Prob"), value("corrupted", "wrong", "forget_Q_A_Prob"));
  EXPECT_GT(j["removal"]["forget_Q_A_Prob"].get<double>(), 0.5);
  // restoration = (restored − corrupted) / (target − corrupted) on the true answers.
  const double want = (value("restored", "true", "forget_Q_A_Prob") - value("corrupted", "true", "forget_Q_A_Prob")) /
                      (value("target", "true", "forget_Q_A_Prob") - value("corrupted", "true", "forget_Q_A_Prob"));
  EXPECT_NEAR(j["restoration"]["forget_Q_A_Prob"].get<double>(), want, 1e-9);
  EXPECT_TRUE(m["restored"]["true"].contains("retain_Q_A_Prob"));
  EXPECT_TRUE(fs::exists(out / "corrupt.yaml"));
  EXPECT_TRUE(fs::exists(out / "restored" / "model" / "model.safetensors"));
  EXPECT_NE(r.out.find("restoration:  forget_Q_A_Prob "), std::string::npos) << r.out;

  // An occupied --out, a bad method key, a split without perturbed answers: one error each,
  // before any training.
  expect_one_line_error(lethe(args), "restor: --out " + out.string() + " is not empty (--force replaces it)");
  expect_one_line_error(lethe({"restor", "--data", world, "--out", (out.parent_path() / "r3").string()}),
                        "restor: give --model DIR (the clean target)");
  const fs::path o2 = out.parent_path() / "r2";
  expect_one_line_error(lethe({"restor", "--model", target, "--data", world, "--out", o2.string(), "--set",
                               "method.betta=1"}),
                        "betta");
  EXPECT_FALSE(fs::exists(o2 / "corrupted"));
  expect_one_line_error(lethe({"restor", "--model", target, "--data", world, "--out", o2.string(), "--forget-split",
                               "forget07"}),
                        "forget07_perturbed.jsonl is missing");
}

// The probe: section of an unlearn config: probes of the final model, the run's model as the
// target, checked before any training.
TEST(ProbeCli, ProbeSectionOfAnUnlearnConfig) {
  const fs::path demo = temp_dir("probe_cfg_demo");
  auto r = lethe({"demo", "--scale", "tiny", "--out", demo.string(), "--no-progress", "--no-probes"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(demo / "probe")) << "--no-probes";
  const json s = json::parse(read_file(demo / "SUMMARY.json"));
  EXPECT_FALSE(s.contains("probe"));
  const std::string target = s["models"]["target"]["model"], oracle = s["models"]["oracle"]["model"], world = s["world"];
  const fs::path dir = temp_dir("probe_cfg");
  write_file_atomic(dir / "un.yaml",
                    "model: " + target + "\noutput_dir: run\n"
                    "data: {forget: " + world + "/forget10.jsonl, retain: " + world + "/retain90.jsonl, max_length: 128}\n"
                    "method: {name: GradAscent}\n"
                    "train: {max_steps: 2, batch_size: 4, lr: 1.0e-4}\n"
                    "probe: {reference: " + oracle + ", data: " + world + ", probes: [quantize, relearn, in_context],\n"
                    "        quantize: [int8], relearn: {steps: [3], lr: 1.0e-3, lora_rank: 4},\n"
                    "        in_context: {settings: [context, sampled], samples: 2}, max_items: 10}\n");
  r = lethe({"-q", "unlearn", (dir / "un.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const json p = json::parse(read_file(dir / "run" / "probe" / "PROBE.json"));
  EXPECT_EQ(p["models"]["target"]["path"], target);
  EXPECT_EQ(fs::canonical(p["models"]["candidate"]["path"].get<std::string>()), fs::canonical(dir / "run" / "model"));
  ASSERT_EQ(p["models"]["candidate"]["probes"]["quantize"].size(), 1u);
  // Relearning through a LoRA adapter (rank 4, merged afterwards) moved the model.
  const json& rl = p["models"]["candidate"]["probes"]["relearn"];
  ASSERT_EQ(rl.size(), 2u);
  EXPECT_EQ(rl[0]["setting"], "forget-half 3 steps lora-r4");
  EXPECT_NE(rl[0]["metrics"]["forget_Q_A_Prob"]["value"], rl[0]["unattacked"]["forget_Q_A_Prob"]["value"]);
  const json& ic = p["models"]["candidate"]["measured"]["in_context"]["attacks"];
  ASSERT_EQ(ic.size(), 2u);
  EXPECT_EQ(ic[1]["setting"], "leak@2");
  EXPECT_EQ(p["models"]["oracle"]["verdict"], "removed");
  EXPECT_TRUE(fs::exists(dir / "run" / "probe" / "probe.html"));
  EXPECT_EQ(json::parse(read_file(dir / "run" / "run.json"))["outputs"]["probe"],
            (dir / "run" / "probe" / "PROBE.json").string());
  // A bad probe section fails before any training.
  for (const auto& [override_, message] : std::vector<std::pair<std::string, std::string>>{
           {"probe.probes=[relearning]", "unknown probe 'relearning'"},
           {"probe.relearn.stepz=[4]", "unknown key 'probe.relearn.stepz'"},
           {"probe.quantize=[int9]", "int9"},
           {"probe.in_context.settings=[rephrase]", "unknown setting 'rephrase'"},
           {"probe.reference=" + (dir / "nowhere").string(), "nowhere"}}) {
    SCOPED_TRACE(override_);
    expect_one_line_error(lethe({"unlearn", (dir / "un.yaml").string(), override_, "output_dir=run2"}), message);
    EXPECT_FALSE(fs::exists(dir / "run2" / "train_log.jsonl"));
  }
  // robustness: every probe the data can serve; without bios.jsonl the linear probe is left out,
  // and PROBE.json says why. Named explicitly it is an error.
  const fs::path bare = dir / "world_without_bios";
  fs::copy(world, bare, fs::copy_options::recursive);
  fs::remove(bare / "bios.jsonl");
  r = lethe({"probe", "--model", target, "--reference", oracle, "--data", bare.string(), "--out", (dir / "rob").string(),
             "--probes", "robustness", "--quantize", "int8", "--relearn-steps", "1", "--samples", "1", "--max-items", "6",
             "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json rob = json::parse(read_file(dir / "rob" / "PROBE.json"));
  for (const char* name : {"quantize", "relearn", "in_context", "representation"}) EXPECT_TRUE(rob["probes"].contains(name)) << name;
  EXPECT_FALSE(rob["probes"].contains("linear"));
  EXPECT_NE(rob["skipped"]["linear"].get<std::string>().find("bios.jsonl is missing"), std::string::npos) << rob["skipped"];
  expect_one_line_error(lethe({"probe", "--model", target, "--reference", oracle, "--data", bare.string(), "--out",
                               (dir / "rob2").string(), "--probes", "quantize,linear"}),
                        "bios.jsonl is missing");
  // An item longer than the model's positions (256 here) is cut for relearning, not a failure.
  const fs::path longer = dir / "world_long";
  fs::copy(world, longer, fs::copy_options::recursive);
  {
    std::string rows = read_file(longer / "forget10_perturbed.jsonl");
    json first = json::parse(rows.substr(0, rows.find('\n')));
    std::string answer;
    for (int i = 0; i < 400; ++i) answer += "word ";
    first["answer"] = answer;
    write_file_atomic(longer / "forget10_perturbed.jsonl", first.dump() + rows.substr(rows.find('\n')));
  }
  r = lethe({"probe", "--model", target, "--reference", oracle, "--data", longer.string(), "--out", (dir / "long").string(),
             "--probes", "relearn", "--relearn-steps", "1", "--max-items", "4", "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("longer than the model's 256 positions were cut"), std::string::npos) << r.err;
  write_file_atomic(dir / "ft.yaml", "model: " + target + "\noutput_dir: ft\ndata: {train: " + world +
                                         "/forget10.jsonl}\nprobe: {reference: " + oracle + "}\n");
  expect_one_line_error(lethe({"finetune", (dir / "ft.yaml").string()}), "'probe' belongs in unlearn configs");
}

}  // namespace
}  // namespace lethe::test

// Black-box tests of the `lethe` binary: every subcommand run as a user runs it, checking exit
// codes, output and error messages. Golden cases come from the fixtures' manifests, so new
// cases are covered without code changes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <map>
#include <sstream>

#include "lethe/core/file.h"
#include "lethe/io/safetensors.h"
#include "support/fixtures.h"
#include "support/micro_world.h"
#include "integration/cli_runner.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// Reads an I64 tensor of a safetensors file without torch.
std::vector<std::int64_t> read_i64(const fs::path& file, const std::string& name) {
  MappedFile f(file);
  auto h = io::parse_safetensors_header(f.data(), f.size(), file.string());
  const io::TensorInfo* t = h.find(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr || t->dtype != io::DType::kI64) return {};
  std::vector<std::int64_t> v(static_cast<std::size_t>(t->numel()));
  std::memcpy(v.data(), f.data() + h.data_offset + t->begin, v.size() * 8);
  return v;
}

std::string join(const std::vector<std::int64_t>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

TEST(Cli, VersionAndHelp) {
  auto r = lethe({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("lethe 0."), std::string::npos) << r.out;
  r = lethe({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* sub : {"doctor", "info", "generate", "convert"}) {
    EXPECT_NE(r.out.find(sub), std::string::npos) << sub << " missing from --help";
  }
  EXPECT_NE(lethe({}).code, 0);
  EXPECT_NE(lethe({"no-such-command"}).code, 0);
}

TEST(Cli, Doctor) {
  auto r = lethe({"doctor"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* key : {"libtorch", "BLAS", "threads", "CUDA"}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key;
  }
  r = lethe({"--threads", "1", "doctor", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_FALSE(j["reference_blas"].get<bool>()) << j.dump();
  EXPECT_FALSE(j["blas_library"].get<std::string>().empty());
  EXPECT_GE(j["cores"].get<int>(), 1);
  r = lethe({"doctor", "--json"});
  EXPECT_EQ(json::parse(r.out)["threads"], json::parse(r.out)["cores"]) << "default: all cores";
}

// doctor names what this build loads; info reports each golden model's rope scaling, windows and
// soft-caps as its config.json sets them, and whether the folder has a chat template.
TEST(Cli, InfoAndDoctorReportFamiliesRopeAndAttention) {
  auto r = lethe({"doctor", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto d = json::parse(r.out);
  for (const char* t : {"gpt2", "llama", "mistral", "qwen2", "gpt_neox", "phi", "phi3", "gemma", "gemma2", "olmo"})
    EXPECT_NE(std::find(d["model_types"].begin(), d["model_types"].end(), t), d["model_types"].end()) << t;
  EXPECT_EQ(d["rope_scaling_types"], json::array({"default", "linear", "dynamic", "yarn", "longrope", "llama3"}));
  EXPECT_EQ(d["checkpoint_dtypes"], json::array({"F32", "BF16", "F16", "F64"}));
  int cases = 0;
  for (const fs::path& dir : golden_dirs()) {
    if (!fs::exists(dir / "index.json")) continue;
    const json index = json::parse(read_file(dir / "index.json"));  // bound: a temporary's member would dangle
    for (const auto& c : index["cases"]) {
      const std::string name = c["case"].get<std::string>();
      SCOPED_TRACE(name);
      const json cfg = json::parse(read_file(dir / name / "model" / "config.json"));
      r = lethe({"info", "--model", (dir / name / "model").string(), "--json"});
      ASSERT_EQ(r.code, 0) << r.err;
      const auto j = json::parse(r.out);
      const json rs = cfg.value("rope_scaling", json());
      const std::string want_rope = rs.is_object() ? rs.value("rope_type", rs.value("type", "")) : "default";
      if (cfg.value("model_type", "") != "gpt2") EXPECT_EQ(j["rope_scaling"]["type"], want_rope);
      const std::string mt = cfg["model_type"].get<std::string>();
      if (mt == "mistral" || mt == "gemma2") {
        EXPECT_EQ(j["sliding_window"], cfg["sliding_window"]);
        EXPECT_EQ(j["sliding_window_layers"], mt == "gemma2" ? "even" : "all");
      }
      if (mt == "gemma2") {
        EXPECT_EQ(j["attn_logit_softcap"], cfg["attn_logit_softcapping"]);
        EXPECT_EQ(j["final_logit_softcap"], cfg["final_logit_softcapping"]);
      }
      EXPECT_TRUE(j["chat_template"].is_null());
      ++cases;
    }
  }
  if (cases == 0) LETHE_NEED_FIXTURE(golden_dir() / "index.json");
  EXPECT_GE(cases, 13) << "every case of ../shared/golden/hf and hf-4.43";
  // A folder with a chat template says so (and a template outside the subset fails info).
  const fs::path model = temp_dir("info-chat") / "model";
  LETHE_NEED_FIXTURE(golden_dir() / "llama_gqa_untied" / "model");
  fs::copy(golden_dir() / "llama_gqa_untied" / "model", model);
  write_file_atomic(model / "chat_template.jinja", "{{ messages[0].content }}");
  r = lethe({"info", "--model", model.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["chat_template"], "chat_template.jinja");
  write_file_atomic(model / "chat_template.jinja", "{% include 'x' %}");
  r = lethe({"info", "--model", model.string()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("the 'include' statement is not supported"), std::string::npos) << r.err;
}

class GoldenCli : public ::testing::Test {
 protected:
  void SetUp() override { LETHE_NEED_FIXTURE(golden_dir() / "index.json"); }
  // Every case folder of every golden folder (../shared/golden/hf and hf-4.43, or
  // LETHE_GOLDEN_DIR's); none is a failure (a loop over nothing would pass whatever lethe does).
  std::vector<fs::path> cases() const {
    std::vector<fs::path> out;
    for (const fs::path& dir : golden_dirs()) {
      if (!fs::exists(dir / "index.json")) continue;
      // Bound to a name: `for (c : json::parse(...)["cases"])` iterates a member of a temporary
      // destroyed before the loop body runs (these tests once ran no case at all).
      const json index = json::parse(read_file(dir / "index.json"));
      for (const auto& c : index["cases"]) out.push_back(dir / c["case"].get<std::string>());
    }
    EXPECT_FALSE(out.empty()) << "no golden case in " << golden_dir();
    return out;
  }
};

TEST_F(GoldenCli, InfoReportsTheManifestsParameterCount) {
  for (const fs::path& c : cases()) {
    SCOPED_TRACE(c.string());
    auto manifest = json::parse(read_file(c / "manifest.json"));
    auto r = lethe({"info", "--model", (c / "model").string(), "--json", "--tensors"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["parameters"], manifest["n_params"]);
    EXPECT_EQ(j["model_type"], manifest["config"]["model_type"]);
    EXPECT_EQ(j["tensors"].size(), manifest["checkpoint"]["tensors"].size());
    r = lethe({"info", "--model", (c / "model").string()});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("parameters     " + manifest["n_params"].dump()), std::string::npos) << r.out;
  }
}

// One prompt, greedy, through the CLI: the tokens transformers generated (mistral_window runs
// past its window of 5, gemma2_softcap_window past its window on the even layers).
TEST_F(GoldenCli, GreedyGenerationMatchesTransformers) {
  for (const fs::path& c : cases()) {
    SCOPED_TRACE(c.string());
    auto manifest = json::parse(read_file(c / "manifest.json"));
    auto prompt = read_i64(c / "golden.safetensors", "generate.prompt_ids");
    auto want = manifest["scalars"]["generate.new_tokens"].get<std::vector<std::int64_t>>();
    auto r = lethe({"generate", "--model", (c / "model").string(), "--prompt-ids",
                    join(prompt), "--max-new-tokens", std::to_string(want.size()), "--no-eos-stop",
                    "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["new_tokens"].get<std::vector<std::int64_t>>(), want);
    EXPECT_EQ(j["stop_reason"], "max_new_tokens");
  }
}

TEST_F(GoldenCli, BatchedPromptsAndSampling) {
  const std::string model = (golden_dir() / "llama_gqa_untied" / "model").string();
  auto r = lethe({"generate", "--model", model, "--prompt-ids", "5,6,7", "--prompt-ids", "8",
                  "--max-new-tokens", "5", "--no-eos-stop", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    EXPECT_EQ(json::parse(line)["new_tokens"].size(), 5u);
    ++n;
  }
  EXPECT_EQ(n, 2);
  std::vector<std::string> sample = {"generate", "--model", model, "--prompt-ids", "5,6,7",
                                     "--temperature", "1.0", "--top-p", "0.9", "--seed", "3",
                                     "--max-new-tokens", "8", "--no-eos-stop"};
  auto a = lethe(sample), b = lethe(sample);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out) << "same seed, same output";
}

TEST(Cli, ConvertLlama2cThenGenerate) {
  const fs::path bin = shared_dir() / "data" / "llama2c" / "stories260K.bin";
  LETHE_NEED_FIXTURE(bin);
  auto golden = json::parse(read_file(shared_dir() / "data" / "llama2c" / "golden" / "greedy_bos200.json"));
  const fs::path out = temp_dir("convert") / "stories260K";
  auto r = lethe({"convert", "llama2c", bin.string(), "--out", out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out / "config.json"));
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  r = lethe({"info", "--model", out.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["model_type"], "llama");
  auto tokens = golden["tokens"].get<std::vector<std::int64_t>>();
  r = lethe({"generate", "--model", out.string(), "--prompt-ids", "1", "--max-new-tokens",
             std::to_string(tokens.size() - 1), "--no-eos-stop", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["new_tokens"].get<std::vector<std::int64_t>>(),
            std::vector<std::int64_t>(tokens.begin() + 1, tokens.end()));
}

TEST(Cli, TextEndToEnd) {
  const fs::path dir = shared_dir() / "data" / "llama2c";
  LETHE_NEED_FIXTURE(dir / "stories260K.bin");
  LETHE_NEED_FIXTURE(dir / "tok512.bin");
  auto golden = json::parse(read_file(dir / "golden" / "greedy_bos200.json"));
  const std::string want = golden["text"].get<std::string>();
  for (const char* tokenizer : {"tok512.bin", "tok512.model"}) {
    SCOPED_TRACE(tokenizer);
    const fs::path out = temp_dir("text") / "model";
    auto r = lethe({"convert", "llama2c", (dir / "stories260K.bin").string(), "--tokenizer",
                    (dir / tokenizer).string(), "--out", out.string()});
    ASSERT_EQ(r.code, 0) << r.err;
    // Greedy from BOS alone: the reference text.
    r = lethe({"generate", "--model", out.string(), "--prompt", "", "--max-new-tokens", "200",
               "--no-eos-stop", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = json::parse(r.out);
    EXPECT_EQ(j["text"], want);
    EXPECT_EQ(j["prompt_ids"], json::array({1}));
    // A text prompt continues the reference story; a stop string ends it early.
    r = lethe({"generate", "--model", out.string(), "--prompt", "Once upon a time", "--max-new-tokens",
               "60", "--stop", "Lily", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    j = json::parse(r.out);
    EXPECT_EQ(j["stop_reason"], "stop_string");
    EXPECT_NE(j["text"].get<std::string>().find("Lily"), std::string::npos);
    EXPECT_EQ(want.find("Once upon a time" + j["text"].get<std::string>()), 0u) << j["text"];
    r = lethe({"generate", "--model", out.string(), "--prompt", "Once upon a time", "--max-new-tokens", "5"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, ", there was a little\n");
    r = lethe({"info", "--model", out.string(), "--json"});
    EXPECT_EQ(json::parse(r.out)["tokenizer"]["vocab_size"], 512);
  }
}

TEST(Cli, Tokenize) {
  const fs::path dir = shared_dir() / "data" / "llama2c";
  LETHE_NEED_FIXTURE(dir / "golden" / "enc_tok512.json");
  auto cases = json::parse(read_file(dir / "golden" / "enc_tok512.json"));
  std::string jsonl;
  for (const auto& c : cases) jsonl += json{{"text", c["text"]}}.dump() + "\n";
  const fs::path in = temp_dir("jsonl") / "in.jsonl";
  write_file_atomic(in, jsonl);
  // --jsonl reads stdin: run through a shell redirect.
  const std::string cmd = std::string("'") + LETHE_CLI + "' tokenize --tokenizer '" + (dir / "tok512.bin").string() +
                          "' --jsonl < '" + in.string() + "' > '" + in.string() + ".out'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::istringstream lines(read_file(in.string() + ".out"));
  std::string line;
  std::size_t i = 0;
  while (std::getline(lines, line)) {
    ASSERT_LT(i, cases.size());
    EXPECT_EQ(json::parse(line)["ids"], cases[i]["ids"]) << cases[i]["text"];
    ++i;
  }
  EXPECT_EQ(i, cases.size());
  auto r = lethe({"tokenize", "--tokenizer", (dir / "tok512.model").string(), "Hello, world!"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ids     1 346 306 414 432 263 304 341 443"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pieces  <s> ▁He ll o , ▁w or ld !"), std::string::npos) << r.out;
  r = lethe({"tokenize", "--tokenizer", (dir / "tok512.model").string(), "--no-special", "Hello"});
  EXPECT_NE(r.out.find("ids     346 306"), std::string::npos) << r.out;
  expect_one_line_error(lethe({"tokenize", "--tokenizer", "/nonexistent.json", "x"}), "/nonexistent.json");
  expect_one_line_error(lethe({"tokenize", "--tokenizer", (tests_dir() / "corpus" / "tokenizer" / "unknown_decoder.json").string(), "x"}),
                        "unsupported decoder type 'WordPiece'");
}

TEST_F(GoldenCli, TextPromptWithoutTokenizerIsAClearError) {
  expect_one_line_error(lethe({"generate", "--model", (golden_dir() / "gpt2_tied" / "model").string(),
                               "--prompt", "hi"}),
                        "has no tokenizer");
}

// finetune and unlearn from YAML, as a user runs them: outputs, logs, run record, resume, errors.
TEST(Cli, FinetuneThenUnlearn) {
  MicroWorld w = make_micro_world("cli-train");
  write_file_atomic(w.dir / "ft.yaml",
                    "model: model\nfrom_scratch: true\noutput_dir: target\nseed: 1\n"
                    "data: {train: all.jsonl, max_length: 128}\n"
                    "train: {epochs: 40, batch_size: 4, lr: 3.0e-3, schedule: constant, checkpoint_every: 50, eval_every: 100}\n");
  auto r = lethe({"-q", "finetune", (w.dir / "ft.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("steps 200"), std::string::npos) << r.out;
  for (const char* f : {"model/config.json", "model/model.safetensors", "model/tokenizer.model",
                        "train_log.jsonl", "run.json", "checkpoints"}) {
    EXPECT_TRUE(fs::exists(w.dir / "target" / f)) << f;
  }
  auto run = json::parse(read_file(w.dir / "target" / "run.json"));
  EXPECT_EQ(run["kind"], "finetune");
  EXPECT_EQ(run["result"]["steps"], 200);
  EXPECT_GT(run["result"]["final_eval"]["train_prob"].get<double>(), 0.9);
  EXPECT_EQ(run["inputs"].size(), 2u);  // all.jsonl and config.json
  std::istringstream log(read_file(w.dir / "target" / "train_log.jsonl"));
  std::string line, last;
  int lines = 0;
  while (std::getline(log, line)) {
    ++lines;
    last = line;
  }
  EXPECT_EQ(lines, 200);
  EXPECT_TRUE(json::parse(last).contains("eval"));
  EXPECT_TRUE(json::parse(last)["terms"].contains("nll"));

  // The same command again finds the final checkpoint and has nothing left to do.
  r = lethe({"-q", "finetune", (w.dir / "ft.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("(resumed from 200)"), std::string::npos) << r.out;

  // Controlled insertions: the documents' windows come on top of the 5 steps an epoch has.
  write_file_atomic(w.dir / "ins.jsonl",
                    "{\"text\": \"The locker code of Vemar is 123456.\", \"repetitions\": 8}\n"
                    "{\"text\": \"My recovery phrase is amber quill moss.\", \"repetitions\": 1}\n");
  const std::vector<std::string> ins = {"-q", "finetune", (w.dir / "ft.yaml").string(), "data.insert_text=ins.jsonl",
                                        "train.epochs=4", "train.checkpoint_every=0", "train.eval_every=0"};
  auto with = [&](std::vector<std::string> a, const std::vector<std::string>& more) {
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  for (const char* timing : {"first", "last"}) {
    r = lethe(with(ins, {std::string("data.insert_timing=") + timing, std::string("output_dir=ins_") + timing}));
    ASSERT_EQ(r.code, 0) << r.err;
    const json ir = json::parse(read_file(w.dir / (std::string("ins_") + timing) / "run.json"));
    EXPECT_GT(ir["result"]["steps"].get<int>(), 20) << timing;
    EXPECT_LE(ir["result"]["steps"].get<int>(), 23) << timing;  // 9 short copies: a window or two in one epoch
    std::istringstream tl(read_file(w.dir / (std::string("ins_") + timing) / "train_log.jsonl"));
    std::map<int, int> steps_in;  // epoch a step began in -> steps
    int epoch = 0;
    for (std::string l; std::getline(tl, l);) {
      ++steps_in[epoch];
      epoch = json::parse(l)["epoch"];
    }
    const int longer = timing == std::string("first") ? 0 : 3;
    for (int e = 0; e < 4; ++e) EXPECT_EQ(steps_in[e] > 5, e == longer) << timing << " epoch " << e << ": " << steps_in[e];
  }
  expect_one_line_error(lethe(with(ins, {"data.insert_timing=middle"})), "'data.insert_timing' must be spread, first or last");
  expect_one_line_error(lethe(with(ins, {"train.max_steps=10"})), "cannot be used with 'train.max_steps'");
  expect_one_line_error(lethe({"finetune", (w.dir / "ft.yaml").string(), "data.insert_timing=first"}),
                        "'data.insert_timing' without 'data.insert_text'");
  write_file_atomic(w.dir / "ins_bad.jsonl", "{\"text\": \"a\", \"repetitions\": 2}\n{\"text\": \"b\"}\n");
  expect_one_line_error(lethe(with(ins, {"data.insert_text=ins_bad.jsonl", "output_dir=ins_bad"})),
                        "ins_bad.jsonl: line 2: missing field 'repetitions'");

  write_file_atomic(w.dir / "un.yaml",
                    "model: target/model\noutput_dir: unlearned\nseed: 1\n"
                    "data: {forget: forget.jsonl, retain: retain.jsonl, idk: idk.jsonl, max_length: 128}\n"
                    "method: {name: NPO, alpha: 10.0}\n"
                    "train: {epochs: 20, batch_size: 5, lr: 1.0e-3, schedule: constant, eval_every: 20}\n");
  r = lethe({"-q", "unlearn", (w.dir / "un.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  run = json::parse(read_file(w.dir / "unlearned" / "run.json"));
  EXPECT_LT(run["result"]["final_eval"]["forget_prob"].get<double>(), 0.1);
  EXPECT_GT(run["result"]["final_eval"]["retain_prob"].get<double>(), 0.8);
  EXPECT_TRUE(run["result"]["last_terms"].contains("forget"));
  EXPECT_TRUE(run["result"]["last_terms"].contains("retain"));

  // The oracle-free stop rule: gradient ascent stops at the first check where the forget answers'
  // mean NLL reaches that of people the model never saw; every check is in the log.
  write_file_atomic(w.dir / "holdout.jsonl",
                    "{\"question\": \"Where was Tovadu born?\", \"answer\": \"Tovadu was born in Kostra.\"}\n"
                    "{\"question\": \"What is the favorite color of Merisa?\", \"answer\": \"Merisa likes the color olive.\"}\n"
                    "{\"question\": \"Where was Zekanu born?\", \"answer\": \"Zekanu was born in Valmere.\"}\n");
  r = lethe({"-q", "unlearn", (w.dir / "un.yaml").string(), "method={name: GradAscent}", "data.holdout=holdout.jsonl",
             "train.stop_rule=holdout_nll", "train.stop_every=1", "output_dir=stopped"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("stopped by the stop rule: the forget answers' mean NLL"), std::string::npos) << r.out;
  run = json::parse(read_file(w.dir / "stopped" / "run.json"));
  EXPECT_TRUE(run["result"]["stopped_by_rule"].get<bool>());
  EXPECT_FALSE(run["result"]["stopped_by_guard"].get<bool>());
  const int stopped_at = run["result"]["steps"];
  EXPECT_LT(stopped_at, 20);
  {
    std::istringstream slog(read_file(w.dir / "stopped" / "train_log.jsonl"));
    std::vector<json> entries;
    while (std::getline(slog, line)) entries.push_back(json::parse(line));
    ASSERT_EQ(static_cast<int>(entries.size()), stopped_at);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const json& c = entries[i]["stop_check"];
      const bool last = i + 1 == entries.size();
      EXPECT_EQ(c["forget_nll"].get<double>() >= c["holdout_nll"].get<double>(), last) << "step " << i + 1;
      EXPECT_EQ(entries[i].contains("stop"), last);
    }
  }
  expect_one_line_error(lethe({"unlearn", (w.dir / "un.yaml").string(), "train.stop_rule=holdout_nll"}),
                        "'train.stop_rule: holdout_nll' needs 'data.holdout'");
  expect_one_line_error(lethe({"unlearn", (w.dir / "un.yaml").string(), "train.stop_every=3"}),
                        "'train.stop_every' without a 'train.stop_rule'");
  expect_one_line_error(lethe({"unlearn", (w.dir / "un.yaml").string(), "train.stop_rule=oracle"}),
                        "'train.stop_rule' must be holdout_nll");

  // Every method runs from the CLI (a few steps each), LoRA and FILA included.
  for (const char* method : {"GradAscent", "GradDiff", "SimNPO", "IdkDPO", "IdkNLL", "UNDIAL", "WGA",
                             "SatImp", "CE-U", "IHL"}) {
    SCOPED_TRACE(method);
    r = lethe({"-q", "unlearn", (w.dir / "un.yaml").string(), std::string("method=") + "{name: " + method + "}",
               "output_dir=m_" + std::string(method), "train.epochs=1"});
    EXPECT_EQ(r.code, 0) << r.err;
  }
  r = lethe({"-q", "unlearn", (w.dir / "un.yaml").string(), "method={name: RMU, layer: resid_post.1, steering_coeff: 5, trainable_params: ['model\\.layers\\.1\\.mlp\\.down_proj\\.weight']}",
             "output_dir=m_rmu", "train.epochs=1"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = lethe({"-q", "unlearn", (w.dir / "un.yaml").string(), "method={name: IHL}", "lora={rank: 4, alpha: 8, init: fila}",
             "output_dir=m_loku", "train.epochs=2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(w.dir / "m_loku" / "adapter" / "adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(w.dir / "m_loku" / "model" / "model.safetensors"));
  EXPECT_TRUE(json::parse(read_file(w.dir / "m_loku" / "run.json"))["outputs"]["adapter_needs_modified_base"].get<bool>());

  expect_one_line_error(lethe({"unlearn", (w.dir / "un.yaml").string(), "train.lrr=1"}), "unknown key 'train.lrr'");
  expect_one_line_error(lethe({"unlearn", (w.dir / "un.yaml").string(), "method.name=Forget"}),
                        "unknown unlearning method 'Forget'");
  expect_one_line_error(lethe({"finetune", (w.dir / "missing.yaml").string()}), "missing.yaml");
  r = lethe({"unlearn", "--methods"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("SimNPO"), std::string::npos);
}

TEST(Cli, ExampleConfigsParse) {
  for (const auto& e : fs::directory_iterator(fs::path(LETHE_SOURCE_DIR) / "examples" / "configs")) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(name);
    // --methods aside, a config that does not parse fails before touching the model.
    auto r = lethe({name.rfind("finetune", 0) == 0 ? "finetune" : "unlearn", e.path().string(),
                    "model=/nonexistent/model"});
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.err.find("config:"), std::string::npos) << "config error in " << name << ": " << r.err;
    EXPECT_NE(r.err.find("/nonexistent/model: no such model folder"), std::string::npos) << r.err;
  }
}

// A real Hugging Face GPT-2 folder at full vocabulary size (50257), saved by transformers 4.36
// with the real tokenizer files beside the weights.
TEST(Cli, FakeGpt2FolderAtFullVocabulary) {
  const fs::path dir = shared_dir() / "data" / "models" / "fake-gpt2";
  LETHE_NEED_FIXTURE(dir / "model.safetensors");
  auto r = lethe({"info", "--model", dir.string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json::parse(r.out);
  EXPECT_EQ(j["vocab_size"], 50257);
  EXPECT_EQ(j["parameters"], 50257 * 2 + 1024 * 2 + (2 * 6 + 6) + (2 * 2 + 2) + (2 * 8 + 8) +
                                 (8 * 2 + 2) + 4 * 2 + 2 * 2);
  r = lethe({"generate", "--model", dir.string(), "--prompt-ids", "464,2068", "--max-new-tokens", "4",
             "--no-eos-stop", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json out = json::parse(r.out);
  ASSERT_EQ(out["new_tokens"].size(), 4u);
  for (const auto& id : out["new_tokens"]) {
    EXPECT_GE(id.get<int>(), 0);
    EXPECT_LT(id.get<int>(), 50257);
  }
}

TEST(Cli, ErrorsAreOneClearLine) {
  expect_one_line_error(lethe({"info", "--model", "/nonexistent/model"}), "/nonexistent/model");
  const fs::path corpus = tests_dir() / "corpus";
  expect_one_line_error(lethe({"convert", "llama2c", (corpus / "safetensors" / "valid.safetensors").string(),
                               "--out", temp_dir("bad").string()}),
                        "llama2.c");
  // A model folder whose config is broken.
  const fs::path bad = temp_dir("badcfg");
  fs::copy_file(corpus / "config" / "unknown_model_type.json", bad / "config.json");
  expect_one_line_error(lethe({"info", "--model", bad.string()}), "unsupported model_type 'mamba'");
  expect_one_line_error(lethe({"--device", "tpu", "doctor"}), "unknown device 'tpu'");
}

TEST_F(GoldenCli, GenerateRejectsBadInput) {
  const std::string model = (golden_dir() / "gpt2_tied" / "model").string();
  expect_one_line_error(lethe({"generate", "--model", model, "--prompt-ids", "1,300", "--max-new-tokens", "5"}),
                        "token id 300 is outside the vocabulary [0, 300)");
  expect_one_line_error(lethe({"generate", "--model", model, "--prompt-ids", "1", "--max-new-tokens", "100"}),
                        "exceeds this model's 64 positions");
  auto r = lethe({"generate", "--model", model, "--prompt-ids", "1,x"});
  EXPECT_NE(r.code, 0);
  r = lethe({"generate", "--model", model});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--prompt-ids"), std::string::npos) << r.err;
  r = lethe({"generate", "--model", model, "--prompt-ids", "1", "--top-p", "1.5"});
  EXPECT_NE(r.code, 0);
}

}  // namespace
}  // namespace lethe::test

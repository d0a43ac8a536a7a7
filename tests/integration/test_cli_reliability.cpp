// Reliability cases from the bad-input and fault review (issue 12), each reproduced through the
// CLI: outputs kept apart from inputs, whole-folder writes, symlinks, killed runs, one run per
// folder, resume independent of how paths are spelled, thread counts, damaged checkpoints.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "integration/cli_runner.h"
#include "lethe/core/file.h"
#include "lethe/io/safetensors.h"
#include "support/fixtures.h"
#include "support/micro_world.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// A finetune config of a few steps on the micro world, checkpointing every 5 steps.
void write_finetune_config(const MicroWorld& w, const fs::path& yaml, const std::string& output_dir,
                           int epochs = 4) {
  write_file_atomic(yaml, "model: " + w.model_dir.string() + "\nfrom_scratch: true\noutput_dir: " + output_dir +
                              "\nseed: 1\ndata: {train: " + w.all.string() +
                              ", max_length: 64}\ntrain: {epochs: " + std::to_string(epochs) +
                              ", batch_size: 4, lr: 3.0e-3, schedule: constant, checkpoint_every: 5, "
                              "keep_checkpoints: 3, progress: false}\n");
}

std::string fingerprint(const fs::path& p) { return file_fingerprint(p); }

// A pid no process has now (for planting a dead process's temporaries).
long dead_pid() {
  for (long pid = 4000000; pid > 1000; pid -= 997) {
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return pid;
  }
  return 0;
}

std::vector<json> log_lines(const fs::path& file) {
  std::vector<json> out;
  std::istringstream in(read_file(file));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

// 1. A run never writes into its own input: the model folder, folders that contain it, data.
TEST(Reliability, OutputsNeverOverlapInputs) {
  MicroWorld w = make_micro_world("rel-apart");
  write_finetune_config(w, w.dir / "ft.yaml", (w.dir / "run").string(), 1);
  auto r = lethe({"-q", "finetune", (w.dir / "ft.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const fs::path weights = w.dir / "run" / "model" / "model.safetensors";
  const std::string before = fingerprint(weights);
  const std::string model = "model=" + (w.dir / "run" / "model").string();
  // The issue's case: model=RUN/model output_dir=RUN.
  expect_one_line_error(lethe({"finetune", (w.dir / "ft.yaml").string(), model, "from_scratch=false",
                               "output_dir=" + (w.dir / "run").string()}),
                        "contains the input model");
  expect_one_line_error(lethe({"finetune", (w.dir / "ft.yaml").string(), model, "from_scratch=false",
                               "output_dir=" + (w.dir / "run" / "model").string()}),
                        "is the input model");
  expect_one_line_error(lethe({"finetune", (w.dir / "ft.yaml").string(), model, "from_scratch=false",
                               "output_dir=" + (w.dir / "run" / "model" / "again").string()}),
                        "lies inside the input model");
  // Spelled differently (a "..", a symlink): still the same folder.
  fs::create_directory_symlink(w.dir / "run", w.dir / "link");
  expect_one_line_error(lethe({"finetune", (w.dir / "ft.yaml").string(), model, "from_scratch=false",
                               "output_dir=" + (w.dir / "link" / "model" / ".." ).string()}),
                        "contains the input model");
  // A data file inside the output folder.
  expect_one_line_error(lethe({"finetune", (w.dir / "ft.yaml").string(), "output_dir=" + w.dir.string()}),
                        "contains the input");
  EXPECT_EQ(fingerprint(weights), before) << "the input weights changed";

  // eval --out and convert --out: the same rule.
  expect_one_line_error(lethe({"eval", "--model", (w.dir / "run" / "model").string(), "--data", w.dir.string(),
                               "--out", (w.dir / "run" / "model").string()}),
                        "is the input --model");
  const fs::path bin = shared_dir() / "data" / "llama2c" / "stories260K.bin";
  if (fs::exists(bin)) {
    const fs::path dir = temp_dir("rel-convert-in");
    fs::copy_file(bin, dir / "stories.bin");
    expect_one_line_error(lethe({"convert", "llama2c", (dir / "stories.bin").string(), "--out", dir.string(), "--force"}),
                          "contains the input FILE");
    EXPECT_TRUE(fs::exists(dir / "stories.bin"));
  }
}

// 2. convert into an existing folder: refused without --force; with it the folder is replaced
// whole (the stale tokenizer.json of the first conversion is gone).
TEST(Reliability, ConvertReplacesWholeFolderOnlyWithForce) {
  const fs::path dir = shared_dir() / "data" / "llama2c";
  LETHE_NEED_FIXTURE(dir / "stories260K.bin");
  LETHE_NEED_FIXTURE(dir / "tok512.bin");
  const fs::path out = temp_dir("rel-convert") / "stories";
  auto r = lethe({"-q", "convert", "llama2c", (dir / "stories260K.bin").string(), "--tokenizer",
                  (dir / "tok512.bin").string(), "--out", out.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(fs::exists(out / "tokenizer.json"));
  write_file_atomic(out / "notes.txt", "mine");
  expect_one_line_error(lethe({"convert", "llama2c", (dir / "stories260K.bin").string(), "--out", out.string()}),
                        "exists and is not empty");
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  EXPECT_EQ(read_file(out / "notes.txt"), "mine");
  r = lethe({"-q", "convert", "llama2c", (dir / "stories260K.bin").string(), "--out", out.string(), "--force"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_FALSE(fs::exists(out / "tokenizer.json")) << "stale tokenizer kept";
  EXPECT_FALSE(fs::exists(out / "notes.txt"));
  for (const auto& e : fs::directory_iterator(out.parent_path())) {
    EXPECT_EQ(e.path().filename().string().find(".partial."), std::string::npos) << e.path();
  }
  // An existing file as --out.
  write_file_atomic(out.parent_path() / "file", "x");
  expect_one_line_error(lethe({"convert", "llama2c", (dir / "stories260K.bin").string(), "--out",
                               (out.parent_path() / "file").string()}),
                        "is a file, not a folder");
}

// 3. A tokenizer file that links out of the model folder is refused before training; copied
// files keep their mode (a private tokenizer stays private).
TEST(Reliability, NoSymlinksOutOfInputFolders) {
  MicroWorld w = make_micro_world("rel-link");
  const fs::path secret = temp_dir("rel-secret") / "private.model";
  fs::copy_file(w.model_dir / "tokenizer.model", secret);
  ::chmod(secret.c_str(), 0600);
  fs::remove(w.model_dir / "tokenizer.model");
  fs::create_symlink(secret, w.model_dir / "tokenizer.model");
  write_finetune_config(w, w.dir / "ft.yaml", (w.dir / "run").string(), 1);
  expect_one_line_error(lethe({"finetune", (w.dir / "ft.yaml").string()}), "is a symbolic link to");
  EXPECT_FALSE(fs::exists(w.dir / "run" / "model"));

  // The file itself, private: the copy is as private.
  fs::remove(w.model_dir / "tokenizer.model");
  fs::copy_file(secret, w.model_dir / "tokenizer.model");
  ::chmod((w.model_dir / "tokenizer.model").c_str(), 0600);
  auto r = lethe({"-q", "finetune", (w.dir / "ft.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat((w.dir / "run" / "model" / "tokenizer.model").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// 4. SIGKILL at any moment leaves either no model/ or a complete one; temporaries of dead
// processes are cleaned at the next start and never ship inside model/.
TEST(Reliability, KilledRunsLeaveNothingThatLooksComplete) {
  MicroWorld w = make_micro_world("rel-kill");
  write_finetune_config(w, w.dir / "ft.yaml", (w.dir / "run").string(), 4);
  // Time one whole run, then kill runs at fractions of that time, most near the end (the final
  // save of model/).
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t whole = spawn_lethe({"-q", "--threads", "1", "finetune", (w.dir / "ft.yaml").string()}, w.dir / "log");
  ASSERT_EQ(wait_lethe(whole), 0) << read_file(w.dir / "log");
  const double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (double fraction : {0.3, 0.6, 0.85, 0.92, 0.96, 0.99}) {
    const int delay_ms = static_cast<int>(fraction * run_ms);
    SCOPED_TRACE(delay_ms);
    fs::remove_all(w.dir / "run");
    const pid_t pid = spawn_lethe({"-q", "--threads", "1", "finetune", (w.dir / "ft.yaml").string()}, w.dir / "log");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGKILL);
    wait_lethe(pid);
    if (fs::exists(w.dir / "run" / "model")) {
      auto r = lethe({"info", "--model", (w.dir / "run" / "model").string()});
      EXPECT_EQ(r.code, 0) << "an incomplete model/ survived: " << r.err;
      EXPECT_TRUE(fs::exists(w.dir / "run" / "model" / "tokenizer.model"));
    }
    if (!fs::exists(w.dir / "run")) continue;
    for (const auto& e : fs::directory_iterator(w.dir / "run")) {
      const std::string n = e.path().filename().string();
      if (n.find(".partial.") != std::string::npos) {
        expect_one_line_error(lethe({"info", "--model", e.path().string()}), "incomplete folder");
      }
    }
  }
  // Plant a dead process's temporaries; the next run removes them and finishes.
  const std::string dead = std::to_string(dead_pid());
  fs::create_directories(w.dir / "run");
  write_file_atomic(w.dir / "run" / (".train_log.jsonl.tmp." + dead + ".0"), "torn");
  fs::create_directories(w.dir / "run" / (".model.partial." + dead + ".3"));
  auto r = lethe({"-q", "--threads", "1", "finetune", (w.dir / "ft.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const fs::path& d : {w.dir / "run", w.dir / "run" / "model"}) {
    for (const auto& e : fs::directory_iterator(d)) {
      const std::string n = e.path().filename().string();
      EXPECT_EQ(n.find(".tmp."), std::string::npos) << e.path();
      EXPECT_EQ(n.find(".partial."), std::string::npos) << e.path();
    }
  }
  EXPECT_EQ(lethe({"info", "--model", (w.dir / "run" / "model").string()}).code, 0);
}

// 5. A second run on the same output folder fails at once with a clear message.
TEST(Reliability, OneRunPerOutputFolder) {
  MicroWorld w = make_micro_world("rel-lock");
  write_finetune_config(w, w.dir / "ft.yaml", (w.dir / "run").string(), 200);
  const pid_t pid = spawn_lethe({"-q", "--threads", "1", "finetune", (w.dir / "ft.yaml").string()}, w.dir / "log");
  // Wait until the first process holds the lock (it writes its pid into the lock file).
  const fs::path lock = w.dir / "run" / ".lethe-lock";
  for (int i = 0; i < 200; ++i) {
    if (fs::exists(lock) && read_file(lock) == std::to_string(pid) + "\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_EQ(read_file(lock), std::to_string(pid) + "\n");
  auto r = lethe({"finetune", (w.dir / "ft.yaml").string()});
  ::kill(pid, SIGKILL);
  wait_lethe(pid);
  expect_one_line_error(r, "is in use by another lethe process (pid " + std::to_string(pid) + ")");
  // A folder the user owns (files no lethe run wrote) is not taken over either.
  const fs::path mine = temp_dir("rel-mine");
  write_file_atomic(mine / "thesis.tex", "precious");
  expect_one_line_error(lethe({"finetune", (w.dir / "ft.yaml").string(), "output_dir=" + mine.string()}),
                        "holds files that no lethe run wrote");
  EXPECT_EQ(read_file(mine / "thesis.tex"), "precious");
}

// 14-16. Resume: the same run spelled from another directory resumes; another thread count is
// refused; a damaged newest checkpoint falls back to the one before with a warning, the result
// is the uninterrupted run's, and the token counter continues.
TEST(Reliability, ResumeIsRobust) {
  MicroWorld w = make_micro_world("rel-resume");
  fs::create_directories(w.dir / "cfg");
  // Relative paths, resolved against the config's folder.
  write_file_atomic(w.dir / "cfg" / "res.yaml",
                    "model: ../model\nfrom_scratch: true\noutput_dir: ../run\nseed: 1\n"
                    "data: {train: ../all.jsonl, max_length: 64}\n"
                    "train: {epochs: 4, batch_size: 4, lr: 3.0e-3, schedule: constant, checkpoint_every: 5, "
                    "keep_checkpoints: 3, progress: false}\n");
  auto r = lethe_in(w.dir, {"-q", "--threads", "1", "finetune", "cfg/res.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto full_log = log_lines(w.dir / "run" / "train_log.jsonl");
  ASSERT_EQ(full_log.size(), 20u);
  const std::string weights = fingerprint(w.dir / "run" / "model" / "model.safetensors");

  r = lethe_in(w.dir / "cfg", {"-q", "--threads", "1", "finetune", "res.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("(resumed from 20)"), std::string::npos) << r.out << r.err;

  expect_one_line_error(lethe_in(w.dir, {"--threads", "2", "finetune", "cfg/res.yaml"}),
                        "the run started with 1 threads and would continue with 2");

  // Damage the newest checkpoint (step 20): the run goes back to step 15 and redoes 5 steps.
  const fs::path newest = w.dir / "run" / "checkpoints" / "step-00000020" / "trainable.safetensors";
  ASSERT_TRUE(fs::exists(newest));
  fs::resize_file(newest, fs::file_size(newest) / 2);
  r = lethe_in(w.dir, {"--threads", "1", "finetune", "cfg/res.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("step-00000020 is damaged and was skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("(resumed from 15)"), std::string::npos) << r.out;
  EXPECT_EQ(fingerprint(w.dir / "run" / "model" / "model.safetensors"), weights);
  const auto resumed_log = log_lines(w.dir / "run" / "train_log.jsonl");
  ASSERT_EQ(resumed_log.size(), 20u);
  for (std::size_t i = 0; i < resumed_log.size(); ++i) {
    EXPECT_EQ(resumed_log[i]["tokens"], full_log[i]["tokens"]) << "step " << i + 1;
  }
}

// A finetuned micro model (weights, tokenizer) for the model-level cases below.
class ReliabilityModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new MicroWorld(make_micro_world("rel-model"));
    write_finetune_config(*world_, world_->dir / "ft.yaml", (world_->dir / "run").string(), 1);
    auto r = lethe({"-q", "finetune", (world_->dir / "ft.yaml").string()});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static const MicroWorld& w() { return *world_; }
  static fs::path model() { return world_->dir / "run" / "model"; }
  // A copy of the model folder whose config.json has `key` set to the raw JSON `value`.
  static fs::path with_config(const std::string& key, const std::string& value) {
    const fs::path dir = temp_dir("rel-cfg");
    for (const auto& e : fs::directory_iterator(model())) fs::copy_file(e.path(), dir / e.path().filename());
    json c = json::parse(read_file(dir / "config.json"));
    c[key] = json::parse(value);
    write_file_atomic(dir / "config.json", c.dump(2));
    return dir;
  }
  static inline MicroWorld* world_ = nullptr;
};

// 6. Truncation is reported with counts (stderr, run.json); cutting a whole answer is an error.
TEST_F(ReliabilityModel, TruncationIsReported) {
  const std::string cfg = (w().dir / "ft.yaml").string();
  // The micro world's QA items are about 16-20 tokens; 14 keeps every prompt and cuts answers.
  auto r = lethe({"finetune", cfg, "output_dir=" + (w().dir / "trunc").string(), "data.max_length=14"});
  if (r.code != 0) {
    expect_one_line_error(r, "leaves no token of the answer");
  } else {
    EXPECT_NE(r.err.find("truncated the answers of"), std::string::npos) << r.err;
    const json run = json::parse(read_file(w().dir / "trunc" / "run.json"));
    EXPECT_GT(run["truncation"]["truncated_items"].get<int>(), 0) << run["truncation"];
    EXPECT_GT(run["truncation"]["answer_tokens_lost"].get<int>(), 0);
  }
  expect_one_line_error(lethe({"finetune", cfg, "output_dir=" + (w().dir / "trunc2").string(), "data.max_length=4"}),
                        "leaves no token of the answer");
  r = lethe({"-q", "finetune", cfg, "output_dir=" + (w().dir / "notrunc").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(read_file(w().dir / "notrunc" / "run.json"))["truncation"]["truncated_items"], 0);
}

// 7, 8. Empty, null and duplicate values are errors; every value is checked against its domain.
TEST_F(ReliabilityModel, ConfigValuesAreCheckedNotDefaulted) {
  const std::string cfg = (w().dir / "ft.yaml").string();
  const std::string out = "output_dir=" + (w().dir / "cfgerr").string();
  expect_one_line_error(lethe({"finetune", cfg, out, "train.lr="}), "'train.lr' has no value");
  write_file_atomic(w().dir / "null.yaml", read_file(cfg) + "eval_examples:\n");
  expect_one_line_error(lethe({"finetune", (w().dir / "null.yaml").string(), out}), "'eval_examples' has no value");
  write_file_atomic(w().dir / "dup.yaml", read_file(cfg) + "seed: 2\n");
  expect_one_line_error(lethe({"finetune", (w().dir / "dup.yaml").string(), out}), "line 7: duplicate key 'seed' (first on line 4)");
  expect_one_line_error(lethe({"finetune", cfg, out, "tokenizer=''"}), "'tokenizer' is an empty path");
  expect_one_line_error(lethe({"finetune", cfg, out, "train.warmup_ratio=1.5"}),
                        "config: 'train.warmup_ratio' = 1.5 is outside [0, 1]");
  expect_one_line_error(lethe({"finetune", cfg, out, "train.batch_size=0"}),
                        "config: 'train.batch_size' = 0 is outside an integer in [1, inf)");
  expect_one_line_error(lethe({"finetune", cfg, out, "seed=-3"}), "config: 'seed' = -3 is outside an integer in [0, inf)");
  // The NPO family's beta: negative inverts the objective, 0 divides by zero.
  write_file_atomic(w().dir / "un.yaml", "model: " + model().string() + "\noutput_dir: " + (w().dir / "un").string() +
                                              "\ndata: {forget: " + w().forget.string() + ", retain: " +
                                              w().retain.string() + "}\nmethod: {name: NPO}\ntrain: {max_steps: 1}\n");
  for (const char* beta : {"-1", "0"}) {
    expect_one_line_error(lethe({"unlearn", (w().dir / "un.yaml").string(), std::string("method.beta=") + beta}),
                          std::string("method NPO: parameter 'beta' = ") + beta + " is outside (0, inf)");
  }
  expect_one_line_error(lethe({"unlearn", (w().dir / "un.yaml").string(), "method.alpha=-2"}),
                        "parameter 'alpha' = -2 is outside [0, inf)");
  EXPECT_FALSE(fs::exists(w().dir / "un")) << "refused before any work";
}

// 11, 12. Numbers that cannot be right are refused: NaN/Inf weights, heads that do not divide
// the hidden size, ids past int64, malformed --prompt-ids, generations past the context.
TEST_F(ReliabilityModel, ImpossibleNumbersAreRefused) {
  // A NaN in the first float of the weights.
  const fs::path bad = with_config("model_type", "\"llama\"");
  {
    MappedFile f(bad / "model.safetensors");
    auto h = io::parse_safetensors_header(f.data(), f.size(), "x");
    std::string bytes = read_file(bad / "model.safetensors");
    const io::TensorInfo& t = h.tensors.front();
    const float nan = std::nanf("");
    std::memcpy(bytes.data() + h.data_offset + t.begin, &nan, sizeof(nan));
    write_file_atomic(bad / "model.safetensors", bytes);
    expect_one_line_error(lethe({"generate", "--model", bad.string(), "--prompt-ids", "1", "--max-new-tokens", "2"}),
                          "tensor '" + t.name + "' holds 1 NaN or Inf value");
  }
  auto r = lethe({"--allow-nonfinite", "generate", "--model", bad.string(), "--prompt-ids", "1", "--max-new-tokens", "2"});
  EXPECT_EQ(r.code, 0) << r.err;
  expect_one_line_error(lethe({"info", "--model", with_config("num_attention_heads", "5").string()}),
                        "num_attention_heads (5) does not divide hidden_size (64) and no head_dim is given");
  expect_one_line_error(lethe({"info", "--model", with_config("eos_token_id", "9223372036854775808").string()}),
                        "out of range");
  expect_one_line_error(lethe({"info", "--model", with_config("vocab_size", "1000000000000").string()}),
                        "float32 weights (vocab_size / hidden_size: vocab 1000000000000");
  const std::string m = model().string();
  for (const char* ids : {"1,,2", "1,-2", "9223372036854775808", "1,x"}) {
    expect_one_line_error(lethe({"generate", "--model", m, "--prompt-ids", ids}), "is not a token id");
  }
  // The micro model has 256 positions: refused at once instead of running for hours.
  expect_one_line_error(lethe({"generate", "--model", m, "--prompt-ids", "1,2", "--max-new-tokens", "100000000"}),
                        "exceeds this model's 256 positions");
  expect_one_line_error(lethe({"generate", "--model", m, "--prompt-ids", "1", "--temperature", "nan"}), "temperature");
  r = lethe({"generate", "--model", m, "--prompt-ids", "1", "--max-new-tokens", "3", "--temperature", "1e-40"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, lethe({"generate", "--model", m, "--prompt-ids", "1", "--max-new-tokens", "3"}).out)
      << "a tiny temperature decodes greedily";
  // --json streams one line per prompt as it finishes, each naming its prompt.
  r = lethe({"generate", "--model", m, "--prompt-ids", "1,5", "--prompt-ids", "1", "--max-new-tokens", "4", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::set<int> seen;
  for (std::string l; std::getline(lines, l);) seen.insert(json::parse(l)["index"].get<int>());
  EXPECT_EQ(seen, (std::set<int>{0, 1}));
}

// 13. Invalid UTF-8 is one error, with the byte offset, for every tokenizer; --jsonl writes one
// line per input line.
TEST_F(ReliabilityModel, InvalidUtf8AndJsonlLines) {
  const std::string tok = model().string();
  expect_one_line_error(lethe({"tokenize", "--tokenizer", tok, std::string("ok \xff then")}), "byte offset 3 (0xFF)");
  const fs::path l2c = shared_dir() / "data" / "llama2c" / "tok512.bin";
  if (fs::exists(l2c)) {
    expect_one_line_error(lethe({"tokenize", "--tokenizer", l2c.string(), std::string("\xc3")}), "byte offset 0 (0xC3)");
  }
  write_file_atomic(w().dir / "in.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n   \n");
  const fs::path out = temp_dir("rel-jsonl") / "out";
  const int code = std::system((quote(LETHE_CLI) + " tokenize --tokenizer " + quote(tok) + " --jsonl <" +
                                quote((w().dir / "in.jsonl").string()) + " >" + quote(out.string()))
                                   .c_str());
  ASSERT_EQ(WEXITSTATUS(code), 0);
  std::istringstream lines(read_file(out));
  std::vector<std::string> got;
  for (std::string l; std::getline(lines, l);) got.push_back(l);
  ASSERT_EQ(got.size(), 4u) << read_file(out);
  EXPECT_EQ(got[1], "{\"ids\":null}");
  EXPECT_EQ(got[3], "{\"ids\":null}");
  EXPECT_NE(got[0].find("\"ids\":["), std::string::npos);
}

// A value of the wrong type in a tokenizer file or a TOFU log (the fuzzer's findings:
// "model": {"type": [..]} escaped as a bare JSON type error naming neither file nor key) is one
// error naming both.
TEST(Reliability, ValuesOfTheWrongTypeNameFileAndKey) {
  const fs::path valid = fs::path(LETHE_SOURCE_DIR) / "tests" / "corpus" / "tokenizer" / "valid.json";
  const fs::path dir = temp_dir("rel-tokjson");
  json t = json::parse(read_file(valid));
  t["model"]["type"] = json::array({"BPE"});
  write_file_atomic(dir / "tokenizer.json", t.dump());
  const auto bad_type = lethe({"tokenize", "--tokenizer", (dir / "tokenizer.json").string(), "hello"});
  expect_one_line_error(bad_type, "key 'type' must be a string");
  EXPECT_NE(bad_type.err.find((dir / "tokenizer.json").string()), std::string::npos) << bad_type.err;
  // tokenizer_config.json of a folder.
  const fs::path folder = temp_dir("rel-tokdir");
  fs::copy_file(valid, folder / "tokenizer.json");
  write_file_atomic(folder / "tokenizer_config.json", "{\"tokenizer_class\": 5}");
  const auto bad_cfg = lethe({"tokenize", "--tokenizer", folder.string(), "hello"});
  expect_one_line_error(bad_cfg, "key 'tokenizer_class' must be a string");
  EXPECT_NE(bad_cfg.err.find("tokenizer_config.json"), std::string::npos) << bad_cfg.err;
  // A TOFU legacy log whose generated_text holds a number (the second finding).
  const fs::path log = dir / "eval_log_aggregated.json";
  write_file_atomic(log, R"({"eval_log_forget.json": {"avg_gt_loss": {"0": 1.0}, "avg_paraphrased_loss": {"0": 2.0},
    "average_perturb_loss": {"0": [2.5, 3.0]}, "rougeL_recall": {"0": 0.5}, "generated_text": {"0": ["q", "g", 3.0]}}})");
  const auto bad_log = lethe({"eval", "--from-logs", log.string(), "--suite", "tofu", "--out", (dir / "ev").string()});
  expect_one_line_error(bad_log, "generated_text: each item must be [input, generation, ground truth]");
  EXPECT_NE(bad_log.err.find(log.string()), std::string::npos) << bad_log.err;
  // A damaged SentencePiece model on which libsentencepiece throws instead of returning a status.
  const fs::path spm = fs::path(LETHE_SOURCE_DIR) / "tests" / "corpus" / "sentencepiece" / "trie_builder_throws.model";
  const auto bad_spm = lethe({"tokenize", "--tokenizer", spm.string(), "hello"});
  expect_one_line_error(bad_spm, "not a SentencePiece model");
  EXPECT_NE(bad_spm.err.find(spm.string()), std::string::npos) << bad_spm.err;
}

// 17. One exit-code contract: 0 success, 1 an error lethe reports, 2 a usage error.
TEST_F(ReliabilityModel, ExitCodesAndNamedErrors) {
  EXPECT_EQ(lethe({"info", "--model", model().string()}).code, 0);
  EXPECT_EQ(lethe({"info", "--no-such-flag"}).code, 2);
  EXPECT_EQ(lethe({"generate", "--model", model().string(), "--prompt-ids", "1", "--max-new-tokens", "0"}).code, 2);
  EXPECT_EQ(lethe({"generate", "--model", model().string(), "--prompt-ids", "1", "--top-p", "1.5"}).code, 2);
  EXPECT_EQ(lethe({"--help"}).code, 0);
  expect_one_line_error(lethe({"info", "--model", (model() / "config.json").string()}), "not a model folder");
  expect_one_line_error(lethe({"info", "--model", (w().dir / "nothing").string()}), "no such model folder");
  // Every input is checked before any work: a missing retain file, before the model loads.
  write_file_atomic(w().dir / "un17.yaml", "model: " + model().string() + "\noutput_dir: " +
                                               (w().dir / "un17").string() + "\ndata: {forget: " + w().forget.string() +
                                               ", retain: " + (w().dir / "missing.jsonl").string() +
                                               "}\nmethod: {name: GradDiff}\ntrain: {max_steps: 1}\n");
  expect_one_line_error(lethe({"unlearn", (w().dir / "un17.yaml").string()}), "missing.jsonl: no such file (data.retain)");
  EXPECT_FALSE(fs::exists(w().dir / "un17"));
  // The global --device reaches runs (it used to be dropped): it wins over the config's key.
  const std::string cfg = (w().dir / "ft.yaml").string();
  if (!json::parse(lethe({"doctor", "--json"}).out)["cuda_available"].get<bool>()) {
    expect_one_line_error(lethe({"finetune", cfg, "device=cuda", "output_dir=" + (w().dir / "dev").string()}),
                          "device 'cuda'");
  }
  auto r = lethe({"-q", "--device", "cpu", "finetune", cfg, "device=cuda", "output_dir=" + (w().dir / "dev").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(read_file(w().dir / "dev" / "run.json"))["config"]["device"], "cpu");
}

// A run killed with SIGKILL after its first checkpoint and rerun ends bit-identical to an
// uninterrupted one, LoRA dropout included: checkpoints carry every generator's state.
TEST(Reliability, KilledLoraDropoutRunResumesBitIdentical) {
  MicroWorld w = make_micro_world("rel-rng");
  const std::string lora = "lora={rank: 4, alpha: 8, dropout: 0.3}";
  auto config = [&](const std::string& out) {
    write_file_atomic(w.dir / (out + ".yaml"),
                      "model: " + w.model_dir.string() + "\nfrom_scratch: true\noutput_dir: " + (w.dir / out).string() +
                          "\nseed: 5\ndata: {train: " + w.all.string() +
                          ", max_length: 64}\ntrain: {epochs: 40, batch_size: 4, lr: 3.0e-3, schedule: constant, "
                          "checkpoint_every: 5, keep_checkpoints: 2, progress: false}\n");
    return (w.dir / (out + ".yaml")).string();
  };
  auto r = lethe({"-q", "--threads", "1", "finetune", config("whole"), lora});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string want = read_file(w.dir / "whole" / "model" / "model.safetensors");

  const pid_t pid = spawn_lethe({"-q", "--threads", "1", "finetune", config("killed"), lora}, w.dir / "log");
  const fs::path first = w.dir / "killed" / "checkpoints" / "step-00000005" / "state.json";
  for (int i = 0; i < 4000 && !fs::exists(first); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_lethe(pid), -SIGKILL) << "the run finished before it could be killed";
  ASSERT_FALSE(fs::exists(w.dir / "killed" / "model")) << "killed too late to test a resume";
  r = lethe({"-q", "--threads", "1", "finetune", config("killed"), lora});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("(resumed from "), std::string::npos) << r.out;
  EXPECT_TRUE(read_file(w.dir / "killed" / "model" / "model.safetensors") == want)
      << "the resumed run's weights differ from the uninterrupted run's";
}

// 18. Every config in examples/ runs as shipped, on a tiny model and a few steps of the TOFU
// files it names (TOFU's idontknow.jsonl is plain text, one refusal a line).
TEST(Reliability, EveryExampleConfigRuns) {
  LETHE_NEED_FIXTURE(shared_dir() / "data" / "tofu" / "idontknow.jsonl");
  // Eight layers: the RMU example steers layer 7 and trains layers 5-7, as written.
  MicroWorld w = make_micro_world("rel-examples", 20, 64, 8);
  write_finetune_config(w, w.dir / "ft.yaml", (w.dir / "target").string(), 1);
  auto r = lethe({"-q", "finetune", (w.dir / "ft.yaml").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  int ran = 0;
  for (const auto& e : fs::directory_iterator(fs::path(LETHE_SOURCE_DIR) / "examples" / "configs")) {
    if (e.path().extension() != ".yaml") continue;
    const std::string name = e.path().stem().string();
    SCOPED_TRACE(name);
    r = lethe({"-q", name.rfind("finetune", 0) == 0 ? "finetune" : "unlearn", e.path().string(),
               "model=" + (w.dir / "target" / "model").string(), "output_dir=" + (w.dir / name).string(),
               "train.max_steps=2", "train.batch_size=2", "train.grad_accum=1"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(fs::exists(w.dir / name / "run.json"));
    ++ran;
  }
  EXPECT_GE(ran, 5);
}

}  // namespace
}  // namespace lethe::test

// File formats: safetensors read/write for every dtype, header validation against the
// malformed-input corpus, sharded checkpoints, config.json parsing, strict weight loading and
// atomic writes.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/io/checkpoint.h"
#include "lethe/model/load.h"
#include "lethe/model/rope.h"
#include "lethe/train/lora.h"
#include "support/compare.h"
#include "support/errors.h"
#include "support/fixtures.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;


// ---- safetensors ---------------------------------------------------------------------------

TEST(Safetensors, EveryDtypeRoundTrips) {
  const fs::path file = temp_dir("st") / "all.safetensors";
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f64", at::arange(6, at::kDouble).view({2, 3}) / 3},
      {"f32", at::randn({3, 5})},
      {"f16", at::randn({4}).to(at::kHalf)},
      {"bf16", at::randn({2, 2}).to(at::kBFloat16)},
      {"i64", at::arange(-3, 3, at::kLong)},
      {"i32", at::arange(-3, 3, at::kInt)},
      {"i16", at::arange(-3, 3, at::kShort)},
      {"i8", at::arange(-3, 3, at::kChar)},
      {"u8", at::arange(0, 250, 50, at::kByte)},
      {"bool", at::tensor({1, 0, 1}, at::kByte).to(at::kBool)},
      {"scalar", at::tensor(3.5f).reshape({})},
      {"empty", at::zeros({0, 4})},
  };
  io::save_safetensors(file, tensors, {{"note", "hi"}});
  io::SafetensorsFile f(file);
  EXPECT_EQ(f.header().metadata.at("format"), "pt");
  EXPECT_EQ(f.header().metadata.at("note"), "hi");
  EXPECT_EQ(f.header().data_offset % 8, 0u) << "header must be padded to 8 bytes";
  for (const auto& [name, t] : tensors) {
    at::Tensor got = f.load(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(got.equal(t)) << name;
  }
}

TEST(Safetensors, ConvertsToTheRequestedDtype) {
  const fs::path file = temp_dir("st") / "conv.safetensors";
  at::Tensor x = at::randn({8, 8});
  io::save_safetensors(file, {{"h", x.to(at::kHalf)}, {"b", x.to(at::kBFloat16)}});
  io::SafetensorsFile f(file);
  EXPECT_TRUE(f.load("h", at::kFloat).equal(x.to(at::kHalf).to(at::kFloat)));
  EXPECT_TRUE(f.load("b", at::kFloat).equal(x.to(at::kBFloat16).to(at::kFloat)));
  at::Tensor dst = at::empty({8, 8}, at::kDouble);
  f.read_into("h", dst);
  EXPECT_TRUE(dst.equal(x.to(at::kHalf).to(at::kDouble)));
  at::Tensor wrong = at::empty({4, 16});
  EXPECT_ERROR_HAS(f.read_into("h", wrong), "has shape [8, 8] but [4, 16] is expected");
  EXPECT_ERROR_HAS(f.load("nope"), "no tensor named 'nope'");
}

TEST(Safetensors, MisalignedDataIsCopied) {
  // An F32 tensor after a 1-byte U8 tensor starts at an odd address.
  const fs::path file = temp_dir("st") / "odd.safetensors";
  at::Tensor x = at::randn({5});
  io::save_safetensors(file, {{"a_byte", at::ones({1}, at::kByte)}, {"b_float", x}});
  io::SafetensorsFile f(file);
  EXPECT_EQ(f.header().find("b_float")->begin, 1u);
  EXPECT_TRUE(f.load("b_float").equal(x));
}

TEST(Safetensors, WriterRejectsBadNames) {
  const fs::path dir = temp_dir("st");
  EXPECT_ERROR_HAS(io::save_safetensors(dir / "x.safetensors", {{"a", at::ones({1})}, {"a", at::ones({1})}}),
                   "duplicate tensor name 'a'");
  EXPECT_ERROR_HAS(io::save_safetensors(dir / "y.safetensors", {{"__metadata__", at::ones({1})}}),
                   "invalid tensor name");
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
}

// Every file in tests/corpus/safetensors: valid ones parse, broken ones throw one lethe::Error
// whose message names the problem. Never a crash.
TEST(Safetensors, MalformedCorpus) {
  const fs::path dir = tests_dir() / "corpus" / "safetensors";
  auto manifest = nlohmann::json::parse(read_file(dir / "manifest.json"));
  ASSERT_GE(manifest.size(), 20u);
  for (const auto& [name, expect] : manifest.items()) {
    SCOPED_TRACE(name);
    if (expect.is_null()) {
      EXPECT_NO_THROW(io::SafetensorsFile(dir / name));
    } else {
      const std::string msg = error_of([&] { io::SafetensorsFile f(dir / name); });
      EXPECT_NE(msg.find(expect.get<std::string>()), std::string::npos)
          << "expected \"" << expect.get<std::string>() << "\" in: " << msg;
      EXPECT_NE(msg.find(name), std::string::npos) << "error must name the file: " << msg;
    }
  }
}

TEST(Safetensors, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  const std::string valid = read_file(tests_dir() / "corpus" / "safetensors" / "valid.safetensors");
  int errors = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) s[rng() % s.size()] = static_cast<char>(rng() & 0xff);
    if (rng() % 5 == 0) s.resize(rng() % s.size());
    try {
      io::parse_safetensors_header(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), "x");
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(Checkpoint, ShardedIndex) {
  const fs::path dir = temp_dir("shards");
  at::Tensor a = at::randn({3}), b = at::randn({2, 2});
  io::save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", a}});
  io::save_safetensors(dir / "model-00002-of-00002.safetensors", {{"b", b}});
  nlohmann::json index = {{"metadata", {{"total_size", 28}}},
                          {"weight_map",
                           {{"a", "model-00001-of-00002.safetensors"},
                            {"b", "model-00002-of-00002.safetensors"}}}};
  write_file_atomic(dir / "model.safetensors.index.json", index.dump());
  auto ck = io::Checkpoint::open(dir);
  EXPECT_EQ(ck.files().size(), 2u);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(ck.load("b").equal(b));
  EXPECT_EQ(ck.total_bytes(), 28u);

  index["weight_map"]["c"] = "model-00002-of-00002.safetensors";
  write_file_atomic(dir / "model.safetensors.index.json", index.dump());
  EXPECT_ERROR_HAS(io::Checkpoint::open(dir), "'c' is listed in model-00002-of-00002.safetensors");
  index["weight_map"].erase("c");
  index["weight_map"]["d"] = "../evil.safetensors";
  write_file_atomic(dir / "model.safetensors.index.json", index.dump());
  EXPECT_ERROR_HAS(io::Checkpoint::open(dir), "not a file in the checkpoint folder");
  index["weight_map"].erase("d");
  index["weight_map"]["e"] = "missing.safetensors";
  write_file_atomic(dir / "model.safetensors.index.json", index.dump());
  EXPECT_ERROR_HAS(io::Checkpoint::open(dir), "shard missing.safetensors");
  EXPECT_ERROR_HAS(io::Checkpoint::open(temp_dir("empty")), "no model.safetensors");
}

// ---- files -----------------------------------------------------------------------------------

TEST(AtomicFile, CommitReplacesAndAbortLeavesNothing) {
  const fs::path dir = temp_dir("atomic");
  write_file_atomic(dir / "a.txt", "one");
  write_file_atomic(dir / "a.txt", "two");
  EXPECT_EQ(read_file(dir / "a.txt"), "two");
  {
    AtomicFileWriter w(dir / "b.txt");
    w.write("partial");
  }  // destroyed without commit
  EXPECT_FALSE(fs::exists(dir / "b.txt"));
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 1u) << "temporary files left behind";
  EXPECT_ERROR_HAS(write_file_atomic(dir / "no" / "such" / "dir.txt", "x"), "cannot create");
  EXPECT_ERROR_HAS(read_file(dir / "missing.txt"), "missing.txt");
}

// ---- config.json -----------------------------------------------------------------------------

TEST(Config, MalformedCorpus) {
  const fs::path dir = tests_dir() / "corpus" / "config";
  auto manifest = nlohmann::json::parse(read_file(dir / "manifest.json"));
  for (const auto& [name, expect] : manifest.items()) {
    SCOPED_TRACE(name);
    if (expect.is_null()) {
      EXPECT_NO_THROW(model::read_config(dir / name));
    } else {
      const std::string msg = error_of([&] { model::read_config(dir / name); });
      EXPECT_NE(msg.find(expect.get<std::string>()), std::string::npos)
          << "expected \"" << expect.get<std::string>() << "\" in: " << msg;
      EXPECT_NE(msg.find(name), std::string::npos) << "error must name the file: " << msg;
    }
  }
}

// config.json has no libFuzzer target (libtorch 1.13's headers do not compile with clang 14 in
// C++20 mode, so the parser cannot be instrumented): instead every key of a valid config of each
// family is replaced, one at a time, by each kind of hostile value, and byte-level mutations are
// added on top. Every result must be a validated config that builds and runs, or one
// lethe::Error — never a crash, a hang, another exception or a huge allocation.
TEST(Config, SurvivesEveryFieldPerturbation) {
  std::vector<nlohmann::json> bases;
  bases.push_back(nlohmann::json::parse(read_file(tests_dir() / "corpus" / "config" / "valid.json")));
  for (const std::string& type : model::supported_model_types()) {
    bases.push_back(nlohmann::json::parse(model::config_to_json(model::parse_config(model::tiny_config(type), type))));
  }
  const std::vector<nlohmann::json> hostile = {
      nullptr, -1, 0, 1, 3, 2147483648LL, 9223372036854775807LL, 18446744073709551615ULL, 1e12, -1e308, 1e308,
      0.5, "", "x", "silu", true, false, nlohmann::json::array(), nlohmann::json::array({1, 2}),
      nlohmann::json::object(), nlohmann::json::object({{"type", "linear"}, {"factor", 2.0}})};
  std::size_t accepted = 0, refused = 0;
  auto attempt = [&](const std::string& text) {
    try {
      model::ModelConfig c = model::parse_config(text, "fuzz.json");
      ++accepted;
      const double params = static_cast<double>(c.vocab_size) * c.hidden_size * 2 +
                            static_cast<double>(c.num_layers) * (4.0 * c.hidden_size * c.hidden_size +
                                                                 3.0 * c.hidden_size * c.intermediate_size);
      if (params > 2e6 || c.max_position_embeddings > 4096) return;  // valid, but too large to build here
      auto m = model::create_model(c);
      torch::NoGradGuard ng;
      const std::int64_t t = std::min<std::int64_t>(4, c.max_position_embeddings);
      (void)m->forward(at::zeros({1, t}, at::kLong));
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a lethe::Error: " << e.what() << "\n" << text;
    }
  };
  for (const auto& base : bases) {
    for (const auto& [key, _] : base.items()) {
      for (const auto& v : hostile) {
        nlohmann::json j = base;
        j[key] = v;
        attempt(j.dump());
      }
      nlohmann::json j = base;
      j.erase(key);
      attempt(j.dump());
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string text = bases[rng() % bases.size()].dump();
    for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n; ++k) {
      switch (rng() % 3) {
        case 0: text[rng() % text.size()] = static_cast<char>(rng() % 256); break;
        case 1: text.erase(rng() % text.size(), 1 + rng() % 8); break;
        default: text.insert(rng() % text.size(), std::string(1 + rng() % 3, "0123456789-e.,:[]{}\""[rng() % 19])); break;
      }
      if (text.empty()) text = "{";
    }
    attempt(text);
  }
  EXPECT_GT(accepted, 50u);
  EXPECT_GT(refused, 500u);
}

TEST(Config, DefaultsAndFamilies) {
  auto c = model::parse_config(
      R"({"model_type":"qwen2","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,
          "num_attention_heads":2,"num_key_value_heads":1,"intermediate_size":4,
          "eos_token_id":[5,6],"tie_word_embeddings":true})",
      "qwen2.json");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.rotary_dim, 4);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int64_t>{5, 6}));
  EXPECT_FALSE(c.sliding_window.has_value()) << "qwen2 ignores sliding_window unless enabled";
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);

  auto m = model::parse_config(
      R"({"model_type":"mistral","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,
          "num_attention_heads":2,"intermediate_size":4,"sliding_window":6})",
      "mistral.json");
  EXPECT_EQ(m.sliding_window.value_or(0), 6);
  {
    // A window covering the sequence is full attention; past it, exactly the positions whose
    // window excludes a key change.
    auto unwindowed = m;
    unwindowed.sliding_window.reset();
    auto windowed_model = model::create_model(m, {}, 3), full_model = model::create_model(unwindowed, {}, 3);
    torch::NoGradGuard ng;
    const at::Tensor ids = random_ids(1, 10, {2, 9});
    const at::Tensor a = windowed_model->forward(ids).logits, b = full_model->forward(ids).logits;
    EXPECT_TRUE(at::equal(a.narrow(1, 0, 6), b.narrow(1, 0, 6)));
    for (std::int64_t i = 6; i < 9; ++i) EXPECT_FALSE(at::allclose(a.select(1, i), b.select(1, i))) << i;
    EXPECT_TRUE(at::equal(windowed_model->forward(ids.narrow(1, 0, 6)).logits, full_model->forward(ids.narrow(1, 0, 6)).logits));
  }
  {
    // Qwen2's use_sliding_window windows the layers from max_window_layers on (28 by default, so
    // none of a 2-layer model's), with Mistral's mask; the cache decodes past the window as the
    // full forward computes.
    const std::string qwen2 = R"({"model_type":"qwen2","vocab_size":10,"hidden_size":8,"num_hidden_layers":2,
        "num_attention_heads":2,"intermediate_size":4,"use_sliding_window":true,"sliding_window":4)";
    auto q = model::parse_config(qwen2 + R"(,"max_window_layers":1})", "qwen2.json");
    EXPECT_EQ(q.sliding_window.value_or(0), 4);
    EXPECT_FALSE(q.layer_windowed(0));
    EXPECT_TRUE(q.layer_windowed(1));
    auto none = model::parse_config(qwen2 + "}", "qwen2.json");
    EXPECT_FALSE(none.layer_windowed(1)) << "max_window_layers defaults to 28";
    auto unwindowed = q;
    unwindowed.sliding_window.reset();
    auto qwen = model::create_model(q, {}, 3), full = model::create_model(unwindowed, {}, 3),
         qwen_none = model::create_model(none, {}, 3);
    torch::NoGradGuard ng;
    const at::Tensor ids = random_ids(1, 10, {2, 9});
    model::ForwardOptions hs;
    hs.output_hidden_states = true;
    const auto a = qwen->forward(ids, hs), b = full->forward(ids, hs);
    EXPECT_TRUE(at::equal(a.hidden_states[1], b.hidden_states[1])) << "layer 0 attends fully";
    EXPECT_TRUE(at::equal(a.logits.narrow(1, 0, 4), b.logits.narrow(1, 0, 4)));
    for (std::int64_t i = 4; i < 9; ++i) EXPECT_FALSE(at::allclose(a.logits.select(1, i), b.logits.select(1, i))) << i;
    EXPECT_TRUE(at::equal(qwen_none->forward(ids).logits, b.logits));
    model::KVCache cache(2, 4);
    model::ForwardOptions fo;
    fo.cache = &cache;
    std::vector<at::Tensor> parts = {qwen->forward(ids.narrow(1, 0, 3), fo).logits};
    for (std::int64_t t = 3; t < 9; ++t) parts.push_back(qwen->forward(ids.narrow(1, t, 1), fo).logits);
    EXPECT_CLOSE("cached past the window", at::cat(parts, 1), a.logits, tol::kSelf);
    const std::string round_trip = model::config_to_json(q);
    EXPECT_NE(round_trip.find("\"max_window_layers\": 1"), std::string::npos) << round_trip;
  }
  {
    // Phi-3's window is refused past its length (no reference agrees on its extent).
    nlohmann::json j = nlohmann::json::parse(model::tiny_config("phi3"));
    j["sliding_window"] = 6;
    auto phi3 = model::create_model(model::parse_config(j.dump(), "phi3.json"));
    torch::NoGradGuard ng;
    EXPECT_NO_THROW(phi3->forward(at::zeros({1, 6}, at::kLong)));
    EXPECT_ERROR_HAS(phi3->forward(at::zeros({1, 7}, at::kLong)), "sliding attention window (6)");
  }

  auto g = model::parse_config(
      R"({"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_layer":1,"n_head":2,"n_inner":null})",
      "gpt2.json");
  EXPECT_EQ(g.intermediate_size, 32);
  EXPECT_EQ(g.max_position_embeddings, 1024);
  EXPECT_TRUE(g.tie_word_embeddings);
}

// rope_scaling's frequencies against the formulas of transformers 4.43's modeling_rope_utils,
// written out here in double precision, one frequency at a time (llama3 is also checked against
// HF itself by the golden case llama3_rope_scaled_tied).
model::ModelConfig rope_config(const std::string& rope_scaling, std::int64_t max_pos = 64) {
  return model::parse_config(R"({"model_type":"llama","vocab_size":10,"hidden_size":64,"num_hidden_layers":1,
      "num_attention_heads":2,"intermediate_size":8,"rope_theta":10000.0,"max_position_embeddings":)" +
                                 std::to_string(max_pos) + R"(,"rope_scaling":)" + rope_scaling + "}",
                             "rope.json");
}

void expect_frequencies(const model::RotaryTable& t, const std::vector<double>& want, const char* what) {
  ASSERT_EQ(t.inv_freq.numel(), static_cast<std::int64_t>(want.size())) << what;
  ASSERT_EQ(t.inv_freq.scalar_type(), at::kFloat) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double got = t.inv_freq[static_cast<std::int64_t>(i)].item<double>();
    EXPECT_NEAR(got, want[i], 3e-6 * std::abs(want[i])) << what << " frequency " << i;
  }
}

TEST(RopeScaling, FrequenciesFollowTheFormulas) {
  const int d = 32;  // head_dim = rotary_dim
  const double theta = 10000.0;
  std::vector<double> plain;
  for (int i = 0; i < d / 2; ++i) plain.push_back(std::pow(theta, -2.0 * i / d));

  {  // linear: every frequency divided by factor
    const auto c = rope_config(R"({"rope_type":"linear","factor":4.0})");
    std::vector<double> want;
    for (double f : plain) want.push_back(f / 4);
    expect_frequencies(model::rotary_table(c, 64), want, "linear");
    EXPECT_EQ(model::rotary_table(c, 64).attention_scaling, 1.0);
  }
  {  // dynamic: the default up to max_position_embeddings, then a larger base
    const auto c = rope_config(R"({"type":"dynamic","factor":2.0})");
    expect_frequencies(model::rotary_table(c, 64), plain, "dynamic within the context");
    const double base = theta * std::pow(2.0 * 100 / 64 - 1, static_cast<double>(d) / (d - 2));
    std::vector<double> want;
    for (int i = 0; i < d / 2; ++i) want.push_back(std::pow(base, -2.0 * i / d));
    expect_frequencies(model::rotary_table(c, 100), want, "dynamic at 100 positions");
    EXPECT_TRUE(model::rotary_depends_on_length(c));
    EXPECT_EQ(model::last_position(c), std::numeric_limits<std::int64_t>::max());
  }
  {  // yarn: interpolated below the low correction dimension, extrapolated above the high one
    const auto c = rope_config(R"({"rope_type":"yarn","factor":8.0,"beta_fast":16.0})");
    auto corr = [&](double rot) { return d * std::log(64 / (rot * 2 * M_PI)) / (2 * std::log(theta)); };
    const double lo = std::max(std::floor(corr(16)), 0.0), hi = std::min(std::ceil(corr(1)), d - 1.0);
    std::vector<double> want;
    for (int i = 0; i < d / 2; ++i) {
      const double ramp = std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
      want.push_back(plain[i] / 8 * ramp + plain[i] * (1 - ramp));
    }
    const auto t = model::rotary_table(c, 64);
    expect_frequencies(t, want, "yarn");
    EXPECT_NEAR(t.attention_scaling, 0.1 * std::log(8.0) + 1, 1e-12);
  }
  {  // llama3: long wavelengths divided by factor, short kept, a smooth blend between
    const auto c = rope_config(
        R"({"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":40})");
    std::vector<double> want;
    int kept = 0, divided = 0, blended = 0;
    for (double f : plain) {
      const double wl = 2 * M_PI / f;
      if (wl < 40.0 / 4) {
        want.push_back(f), ++kept;
      } else if (wl > 40.0 / 1) {
        want.push_back(f / 8), ++divided;
      } else {
        const double s = (40 / wl - 1) / (4 - 1);
        want.push_back((1 - s) * f / 8 + s * f), ++blended;
      }
    }
    EXPECT_GT(kept * divided * blended, 0) << "the case must exercise all three regions";
    expect_frequencies(model::rotary_table(c, 64), want, "llama3");
  }
  {  // longrope (Llama path): the factors chosen once; the attention factor from the ratio
    std::string shorts = "[", longs = "[";
    for (int i = 0; i < d / 2; ++i) {
      shorts += (i ? "," : "") + std::to_string(1.0 + 0.1 * i);
      longs += (i ? "," : "") + std::to_string(2.0 + 0.5 * i);
    }
    const auto c = rope_config(R"({"rope_type":"longrope","factor":4.0,"short_factor":)" + shorts + "]" +
                               R"(,"long_factor":)" + longs + "]}");
    std::vector<double> want;
    for (int i = 0; i < d / 2; ++i) want.push_back(plain[i] / (2.0 + 0.5 * i));
    const auto t = model::rotary_table(c, 64);
    expect_frequencies(t, want, "longrope");
    EXPECT_NEAR(t.attention_scaling, std::sqrt(1 + std::log(4.0) / std::log(64.0)), 1e-12);
  }
}

TEST(RopeScaling, ParsedStrictlyAndWrittenBack) {
  EXPECT_ERROR_HAS(rope_config(R"({"rope_type":"ntk-by-parts","factor":2.0})"),
                   "rope_scaling type 'ntk-by-parts' is not supported");
  EXPECT_ERROR_HAS(rope_config(R"({"factor":2.0})"), "rope_scaling needs a rope_type");
  EXPECT_ERROR_HAS(rope_config(R"({"rope_type":"linear"})"), "rope_scaling of type linear needs 'factor'");
  EXPECT_ERROR_HAS(rope_config(R"({"rope_type":"longrope","factor":2.0,"short_factor":[1,2],"long_factor":[1,2]})"),
                   "rope_scaling.short_factor must be a list of 16 numbers");
  EXPECT_ERROR_HAS(rope_config(R"({"rope_type":"linear","factor":"2"})"), "rope_scaling.factor must be a number");
  for (const char* rs : {R"({"rope_type":"linear","factor":4.0})", R"({"rope_type":"dynamic","factor":2.0})",
                         R"({"rope_type":"yarn","factor":8.0,"attention_factor":1.5,"beta_slow":2.0})",
                         R"({"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":40})"}) {
    SCOPED_TRACE(rs);
    const auto a = rope_config(rs);
    const auto b = model::parse_config(model::config_to_json(a), "b.json");
    EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
    EXPECT_TRUE(at::equal(model::rotary_table(a, 80).inv_freq, model::rotary_table(b, 80).inv_freq));
    EXPECT_EQ(model::rotary_table(a, 80).attention_scaling, model::rotary_table(b, 80).attention_scaling);
  }
  // Dynamic scaling is for running past the pretrained context; the default is held to it.
  torch::NoGradGuard ng;
  auto dynamic = model::create_model(rope_config(R"({"rope_type":"dynamic","factor":2.0})", 8));
  EXPECT_NO_THROW(dynamic->forward(at::zeros({1, 12}, at::kLong)));
  auto plain = model::create_model(rope_config("null", 8));
  EXPECT_ERROR_HAS(plain->forward(at::zeros({1, 12}, at::kLong)), "beyond this model's 8 positions");
}

TEST(Config, ToJsonRoundTripsEveryFamily) {
  for (const std::string& type : model::supported_model_types()) {
    SCOPED_TRACE(type);
    nlohmann::json j = nlohmann::json::parse(model::tiny_config(type));
    j["bos_token_id"] = 1;
    j["custom_key"] = "kept";
    auto a = model::parse_config(j.dump(), "a.json");
    auto b = model::parse_config(model::config_to_json(a), "b.json");
    EXPECT_EQ(a.vocab_size, b.vocab_size);
    EXPECT_EQ(a.hidden_size, b.hidden_size);
    EXPECT_EQ(a.num_layers, b.num_layers);
    EXPECT_EQ(a.num_heads, b.num_heads);
    EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.intermediate_size, b.intermediate_size);
    EXPECT_EQ(a.rotary_dim, b.rotary_dim);
    EXPECT_EQ(a.activation, b.activation);
    EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
    EXPECT_EQ(a.qkv_bias, b.qkv_bias);
    EXPECT_EQ(a.parallel_residual, b.parallel_residual);
    EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
    EXPECT_EQ(a.bos_token_id, b.bos_token_id);
    EXPECT_EQ(nlohmann::json::parse(model::config_to_json(a))["custom_key"], "kept");
  }
}

// The family's checkpoint key table (ArchSpec::checkpoint_keys) is what the built module holds:
// every name and shape, for every model_type, tied and untied, with and without biases.
TEST(Registry, CheckpointKeysEqualNamedParameters) {
  for (const std::string& type : model::supported_model_types()) {
    for (const char* variant : {"", "tie_word_embeddings", "attention_bias", "mlp_bias"}) {
      nlohmann::json j = nlohmann::json::parse(model::tiny_config(type));
      if (*variant != 0) {
        if (std::string(variant) == "tie_word_embeddings") {
          j[variant] = !model::parse_config(j.dump(), type).tie_word_embeddings;
        } else {
          j[variant] = true;
        }
      }
      SCOPED_TRACE(type + " " + variant + " " + j.dump());
      model::ModelConfig c;
      try {
        c = model::parse_config(j.dump(), type);
      } catch (const Error&) {
        continue;  // a variant this type refuses (e.g. attention_bias for qwen2)
      }
      auto m = model::create_model(c);
      std::vector<model::TensorKey> built;
      for (const auto& item : m->named_parameters(/*recurse=*/true)) {
        built.push_back({item.key(), item.value().sizes().vec()});
      }
      std::vector<model::TensorKey> table = model::checkpoint_keys(c);
      auto by_name = [](const model::TensorKey& a, const model::TensorKey& b) { return a.name < b.name; };
      std::sort(built.begin(), built.end(), by_name);
      std::sort(table.begin(), table.end(), by_name);
      ASSERT_EQ(table.size(), built.size());
      for (std::size_t i = 0; i < table.size(); ++i) {
        EXPECT_EQ(table[i].name, built[i].name);
        EXPECT_EQ(table[i].shape, built[i].shape) << table[i].name;
      }
    }
  }
}

// Every family declares LoRA targets that adapt every linear of its attention and MLP: the 2-D
// weights of its layers in the key table (7 a layer for Llama, 4 for GPT-2 and Phi-3's fused ones).
TEST(Registry, EveryFamilyDeclaresLoraTargetsAndATinyConfig) {
  for (const std::string& type : model::supported_model_types()) {
    SCOPED_TRACE(type);
    const auto c = model::parse_config(model::tiny_config(type), type);
    EXPECT_EQ(c.model_type, type);
    EXPECT_LE(c.hidden_size, 64);
    auto m = model::create_model(c);
    train::LoraConfig lora;
    lora.rank = 4;
    const auto adapter = train::LoraAdapter::attach(*m, lora, 1);
    std::size_t linears = 0;
    for (const auto& k : model::checkpoint_keys(c)) {
      if (k.name.find(".layers.") != std::string::npos || k.name.find(".h.") != std::string::npos) {
        linears += k.shape.size() == 2 && k.name.ends_with(".weight") ? 1 : 0;
      }
    }
    EXPECT_GT(linears, 0u);
    EXPECT_EQ(adapter->module_names().size(), linears);
  }
}

// ---- strict weight loading -------------------------------------------------------------------

class StrictLoading : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = golden_dir() / "gpt2_tied" / "model";
    LETHE_NEED_FIXTURE(src_ / "model.safetensors");
    io::SafetensorsFile f(src_ / "model.safetensors");
    for (const auto& t : f.header().tensors) tensors_.emplace_back(t.name, f.load(t.name));
  }
  // A copy of the model folder with `tensors` as its checkpoint.
  fs::path folder(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    const fs::path d = temp_dir("strict");
    fs::copy_file(src_ / "config.json", d / "config.json");
    io::save_safetensors(d / "model.safetensors", tensors);
    return d;
  }
  at::Tensor& tensor(const std::string& name) {
    for (auto& [n, t] : tensors_)
      if (n == name) return t;
    throw std::runtime_error("no tensor " + name);
  }
  fs::path src_;
  std::vector<std::pair<std::string, at::Tensor>> tensors_;
};

TEST_F(StrictLoading, WrongShapeNamesTensorAndBothShapes) {
  tensor("transformer.h.1.mlp.c_fc.weight") = at::zeros({64, 100});
  EXPECT_ERROR_HAS(model::load_model(folder(tensors_)),
                   "tensor 'transformer.h.1.mlp.c_fc.weight' has shape [64, 100] but the model "
                   "(from its config) expects [64, 128]");
}

TEST_F(StrictLoading, MissingTensor) {
  auto t = tensors_;
  std::erase_if(t, [](const auto& p) { return p.first == "transformer.ln_f.bias"; });
  EXPECT_ERROR_HAS(model::load_model(folder(t)), "missing tensor 'transformer.ln_f.bias [64]'");
}

TEST_F(StrictLoading, UnexpectedTensor) {
  auto t = tensors_;
  t.emplace_back("transformer.h.9.mlp.c_fc.weight", at::zeros({2}));
  EXPECT_ERROR_HAS(model::load_model(folder(t)),
                   "unexpected tensor 'transformer.h.9.mlp.c_fc.weight'");
}

TEST_F(StrictLoading, IntegerWeightsAreRejected) {
  tensor("transformer.ln_f.bias") = at::zeros({64}, at::kInt);
  EXPECT_ERROR_HAS(model::load_model(folder(tensors_)), "is not floating point");
}

TEST_F(StrictLoading, UnprefixedGpt2WithMaskBuffersLoads) {
  // GPT2Model checkpoints (the original "gpt2") have no "transformer." prefix and carry
  // attn.bias / attn.masked_bias buffers.
  std::vector<std::pair<std::string, at::Tensor>> t;
  for (const auto& [n, v] : tensors_) t.emplace_back(n.substr(std::string("transformer.").size()), v);
  for (int l = 0; l < 3; ++l) {
    t.emplace_back("h." + std::to_string(l) + ".attn.bias", at::ones({1, 1, 64, 64}).tril());
    t.emplace_back("h." + std::to_string(l) + ".attn.masked_bias", at::tensor(-1e4f));
  }
  auto a = model::load_model(folder(t));
  auto b = model::load_model(src_);
  torch::NoGradGuard ng;
  at::Tensor ids = at::arange(10, at::kLong).unsqueeze(0);
  EXPECT_TRUE(a->forward(ids).logits.equal(b->forward(ids).logits));

  // Both spellings of one tensor at once is ambiguous.
  t.emplace_back("transformer.ln_f.bias", tensor("transformer.ln_f.bias"));
  EXPECT_ERROR_HAS(model::load_model(folder(t)), "is stored twice");
}

TEST_F(StrictLoading, BfloatCheckpointLoadsAsFloat) {
  std::vector<std::pair<std::string, at::Tensor>> t;
  for (const auto& [n, v] : tensors_) t.emplace_back(n, v.to(at::kBFloat16));
  auto m = model::load_model(folder(t));
  EXPECT_EQ(m->head_weight().scalar_type(), at::kFloat);
  EXPECT_TRUE(m->head_weight().equal(tensor("transformer.wte.weight").to(at::kBFloat16).to(at::kFloat)));
}

}  // namespace
}  // namespace lethe::test

// stories260K (a real pretrained llama2.c model) through the HF-layout Llama path: teacher-forced
// logits against the reference C implementation, 200 greedy tokens token for token, and the
// converted HF folder reloading to the same logits.
#include <nlohmann/json.hpp>

#include <fstream>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/io/llama2c.h"
#include "lethe/model/generate.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"
#include "support/compare.h"
#include "support/fixtures.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;

class Stories260K : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = shared_dir() / "data" / "llama2c";
    LETHE_NEED_FIXTURE(dir_ / "stories260K.bin");
    LETHE_NEED_FIXTURE(dir_ / "golden" / "greedy_bos200.json");
    LETHE_NEED_FIXTURE(dir_ / "golden" / "logits_bos200.f32");
    model_ = model::load_llama2c(dir_ / "stories260K.bin");
    auto j = nlohmann::json::parse(read_file(dir_ / "golden" / "greedy_bos200.json"));
    tokens_ = j.at("tokens").get<std::vector<std::int64_t>>();
    rows_ = j.at("n_logit_rows").get<std::int64_t>();
  }
  at::Tensor reference_logits() const {
    std::string raw = read_file(dir_ / "golden" / "logits_bos200.f32");
    const std::int64_t v = model_->config().vocab_size;
    EXPECT_EQ(static_cast<std::int64_t>(raw.size()), rows_ * v * 4);
    at::Tensor t = at::empty({1, rows_, v}, at::kFloat);
    std::memcpy(t.data_ptr<float>(), raw.data(), raw.size());
    return t;
  }

  fs::path dir_;
  std::shared_ptr<model::CausalLM> model_;
  std::vector<std::int64_t> tokens_;
  std::int64_t rows_ = 0;
};

TEST_F(Stories260K, HeaderAndConfig) {
  const auto& c = model_->config();
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST_F(Stories260K, TeacherForcedLogits) {
  torch::NoGradGuard ng;
  at::Tensor ids = at::tensor(std::vector<std::int64_t>(tokens_.begin(), tokens_.begin() + rows_),
                              at::kLong)
                       .unsqueeze(0);
  at::Tensor logits = model_->forward(ids).logits;
  EXPECT_CLOSE("stories260K logits", logits, reference_logits(), tol::kLlama2c);
}

TEST_F(Stories260K, Greedy200Tokens) {
  model::GenerateOptions o;
  o.max_new_tokens = static_cast<std::int64_t>(tokens_.size()) - 1;
  o.stop_at_eos = false;
  auto r = model::generate(*model_, std::vector<std::vector<std::int64_t>>{{tokens_[0]}}, o);
  std::vector<std::int64_t> want(tokens_.begin() + 1, tokens_.end());
  ASSERT_EQ(r.tokens[0].size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(r.tokens[0][i], want[i]) << "first difference at new token " << i;
  }
}

TEST_F(Stories260K, ConvertedFolderReloadsStrictly) {
  const fs::path out = temp_dir("llama2c");
  model::save_model(*model_, out);
  auto reloaded = model::load_model(out);
  torch::NoGradGuard ng;
  at::Tensor ids = at::tensor(std::vector<std::int64_t>(tokens_.begin(), tokens_.begin() + 32),
                              at::kLong)
                       .unsqueeze(0);
  EXPECT_TRUE(reloaded->forward(ids).logits.equal(model_->forward(ids).logits));
  EXPECT_EQ(reloaded->config().bos_token_id.value_or(-1), 1);
  ASSERT_EQ(reloaded->config().eos_token_ids.size(), 1u);
  EXPECT_EQ(reloaded->config().eos_token_ids[0], 2);
}

// The reference text of 200 greedy tokens, decoded by every form of tok512 — in a process that
// also holds libtorch (SentencePiece runs from its plugin; see text/spm_backend.h).
TEST_F(Stories260K, GeneratedTextEqualsReference) {
  LETHE_NEED_FIXTURE(dir_ / "tok512.model");
  LETHE_NEED_FIXTURE(dir_ / "tok512.bin");
  auto golden = nlohmann::json::parse(read_file(dir_ / "golden" / "greedy_bos200.json"));
  const std::string want = golden.at("text").get<std::string>();
  model::GenerateOptions o;
  o.max_new_tokens = static_cast<std::int64_t>(tokens_.size()) - 1;
  o.stop_at_eos = false;
  const fs::path folder = temp_dir("tok512");
  text::install_tokenizer(dir_ / "tok512.bin", folder, 512);
  for (const fs::path& path : {dir_ / "tok512.model", dir_ / "tok512.bin", folder}) {
    SCOPED_TRACE(path.string());
    auto tok = text::load_tokenizer(path);
    const auto prompt = tok->encode("", /*add_special_tokens=*/true);
    ASSERT_EQ(prompt, std::vector<std::int64_t>{1});
    auto r = model::generate(*model_, std::vector<std::vector<std::int64_t>>{prompt}, o);
    EXPECT_EQ(tok->decode(r.tokens[0], true), want);
  }
}

TEST_F(Stories260K, TruncatedFileIsOneClearError) {
  const fs::path out = temp_dir("llama2c-bad") / "truncated.bin";
  std::string raw = read_file(dir_ / "stories260K.bin");
  write_file_atomic(out, std::string_view(raw).substr(0, raw.size() - 100));
  try {
    io::read_llama2c(out);
    FAIL() << "expected lethe::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lethe::test

// Memorization audits (audit/): the canary exposure's candidate spaces, file format, rank
// arithmetic, and a canary planted in a micro model by training.
#include <cmath>

#include <gtest/gtest.h>

#include "lethe/audit/exposure.h"
#include "lethe/core/file.h"
#include "lethe/model/load.h"
#include "lethe/run/run.h"
#include "support/errors.h"
#include "support/fixtures.h"
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
  EXPECT_ERROR_HAS(audit::canary_exposure(*m, *tok, {"x {secret}", "1234567", CandidateSpace::parse("digits:7", "t")}),
                   "the sampled estimate for larger spaces is not built yet");
  EXPECT_ERROR_HAS(audit::canary_exposure(*m, *tok, {"x {secret}", "1234", CandidateSpace::parse("digits:3", "t")}),
                   "the secret '1234' is not in its space digits:3");
  EXPECT_ERROR_HAS(audit::canary_exposure(*m, *tok, {"no slot", "123", CandidateSpace::parse("digits:3", "t")}),
                   "must hold {secret} exactly once");
}

}  // namespace
}  // namespace lethe::test

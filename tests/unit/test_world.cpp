// The world generator: determinism, the TOFU layout and schema, disjoint splits, wrong answers
// that are really wrong, canaries placed their number of times, holdout people never trained.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <set>
#include <sstream>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/data/records.h"
#include "lethe/world/world.h"
#include "support/fixtures.h"

namespace lethe::world {
namespace {
namespace fs = std::filesystem;

std::vector<nlohmann::json> rows(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(p));
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::set<std::string> questions(const fs::path& p) {
  std::set<std::string> q;
  for (const auto& r : data::read_qa(p)) q.insert(r.question);
  return q;
}

TEST(World, SameSeedSameBytesOtherSeedOtherWorld) {
  const fs::path a = test::temp_dir("world_a"), b = test::temp_dir("world_b"), c = test::temp_dir("world_c");
  WorldConfig cfg;
  cfg.people = 40;
  write_world(generate_world(cfg), a);
  write_world(generate_world(cfg), b);
  cfg.seed = 1;
  write_world(generate_world(cfg), c);
  for (const auto& e : fs::directory_iterator(a)) {
    const auto name = e.path().filename();
    EXPECT_EQ(read_file(a / name), read_file(b / name)) << name;
  }
  EXPECT_NE(read_file(a / "full.jsonl"), read_file(c / "full.jsonl"));
}

TEST(World, TofuLayoutAndSplits) {
  const fs::path d = test::temp_dir("world_layout");
  WorldConfig cfg;
  cfg.people = 100;
  const World w = generate_world(cfg);
  write_world(w, d);
  for (const char* f : {"full.jsonl", "forget01.jsonl", "forget05.jsonl", "forget10.jsonl", "forget01_perturbed.jsonl",
                        "forget05_perturbed.jsonl", "forget10_perturbed.jsonl", "retain90.jsonl", "retain95.jsonl",
                        "retain99.jsonl", "retain_perturbed.jsonl", "holdout01.jsonl", "holdout05.jsonl",
                        "holdout10.jsonl", "real_authors.jsonl", "real_authors_perturbed.jsonl", "world_facts.jsonl",
                        "world_facts_perturbed.jsonl", "idontknow.jsonl", "bios.jsonl", "canaries.jsonl",
                        "train_text.jsonl", "retain_text_90.jsonl", "world.json"}) {
    EXPECT_TRUE(fs::exists(d / f)) << f;
  }
  EXPECT_EQ(data::read_qa(d / "full.jsonl").size(), 1000u);
  EXPECT_EQ(data::read_qa(d / "forget01.jsonl").size(), 10u);
  EXPECT_EQ(data::read_qa(d / "forget05.jsonl").size(), 50u);
  EXPECT_EQ(data::read_qa(d / "forget10.jsonl").size(), 100u);
  EXPECT_EQ(data::read_qa(d / "retain90.jsonl").size(), 900u);
  EXPECT_EQ(data::read_qa(d / "holdout10.jsonl").size(), 100u);
  EXPECT_EQ(data::read_qa(d / "retain_perturbed.jsonl").size(), 100u);
  // forget01 ⊂ forget05 ⊂ forget10; forget and retain partition full; holdout never trained.
  const auto full = questions(d / "full.jsonl"), f1 = questions(d / "forget01.jsonl"), f5 = questions(d / "forget05.jsonl"),
             f10 = questions(d / "forget10.jsonl"), r90 = questions(d / "retain90.jsonl"), h10 = questions(d / "holdout10.jsonl");
  EXPECT_EQ(full.size(), 1000u);  // every question is distinct
  EXPECT_TRUE(std::includes(f5.begin(), f5.end(), f1.begin(), f1.end()));
  EXPECT_TRUE(std::includes(f10.begin(), f10.end(), f5.begin(), f5.end()));
  for (const auto& q : f10) EXPECT_FALSE(r90.count(q)) << q;
  EXPECT_EQ(f10.size() + r90.size(), full.size());
  for (const auto& q : h10) EXPECT_FALSE(full.count(q)) << q;
  const auto rp = questions(d / "retain_perturbed.jsonl");
  for (const auto& q : rp) EXPECT_TRUE(r90.count(q)) << q;
  // Perturbed answers: five, distinct, none equal to the answer or its paraphrase.
  for (const auto& r : data::read_qa(d / "forget10_perturbed.jsonl")) {
    ASSERT_EQ(r.perturbed_answers.size(), 5u);
    EXPECT_FALSE(r.paraphrased_answer.empty());
    EXPECT_FALSE(r.paraphrased_question.empty());
    std::set<std::string> s(r.perturbed_answers.begin(), r.perturbed_answers.end());
    EXPECT_EQ(s.size(), 5u);
    EXPECT_FALSE(s.count(r.paraphrased_answer));
  }
  for (const auto& r : data::read_qa(d / "world_facts_perturbed.jsonl")) {
    ASSERT_EQ(r.perturbed_answers.size(), 3u);
    for (const auto& wrong : r.perturbed_answers) EXPECT_NE(wrong, r.answer);
  }
  // Canaries: each appears in the training text exactly its repetition count.
  const std::string text = read_file(d / "train_text.jsonl");
  for (const auto& c : rows(d / "canaries.jsonl")) {
    const std::string s = c["prefix"].get<std::string>() + c["secret"].get<std::string>();
    std::size_t n = 0;
    for (auto pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos + 1)) ++n;
    EXPECT_EQ(n, c["repetitions"].get<std::size_t>()) << s;
  }
  // Oracle text leaves the forget people's biographies out.
  const std::string retain_text = read_file(d / "retain_text_90.jsonl");
  for (int i : w.forget_people(10)) {
    EXPECT_EQ(retain_text.find(w.people[static_cast<std::size_t>(i)].biography), std::string::npos);
    EXPECT_NE(text.find(w.people[static_cast<std::size_t>(i)].name), std::string::npos);
  }
  // Multiple choice: every fact of every forget person, four distinct options, the right one the
  // value the QA answer states; retain_mc covers retain_perturbed's people, world_mc the world
  // facts and public figures.
  const auto qa10 = data::read_qa(d / "forget10.jsonl");
  const auto mc10 = data::read_mc(d / "forget10_mc.jsonl");
  ASSERT_EQ(mc10.size(), qa10.size());
  std::set<std::size_t> positions;
  for (std::size_t i = 0; i < mc10.size(); ++i) {
    EXPECT_EQ(mc10[i].question, qa10[i].question);
    ASSERT_EQ(mc10[i].choices.size(), 4u);
    EXPECT_EQ(std::set<std::string>(mc10[i].choices.begin(), mc10[i].choices.end()).size(), 4u);
    auto lower = [](std::string t) {
      for (auto& ch : t) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      return t;
    };  // answers capitalise a value that opens the sentence
    EXPECT_NE(lower(qa10[i].answer).find(lower(mc10[i].choices[mc10[i].answer])), std::string::npos) << qa10[i].answer;
    positions.insert(mc10[i].answer);
  }
  EXPECT_EQ(positions.size(), 4u) << "the right option's place is drawn";
  EXPECT_EQ(data::read_mc(d / "retain_mc.jsonl").size(), 100u);
  EXPECT_EQ(data::read_mc(d / "world_mc.jsonl").size(),
            data::read_qa(d / "world_facts.jsonl").size() + data::read_qa(d / "real_authors.jsonl").size());
  const auto manifest = nlohmann::json::parse(read_file(d / "world.json"));
  EXPECT_EQ(manifest["format_version"], kWorldFormatVersion);
  EXPECT_EQ(manifest["splits"]["forget10"]["people"].size(), 10u);
}

TEST(World, RejectsTooSmallWorlds) {
  WorldConfig cfg;
  cfg.people = 5;
  EXPECT_THROW(generate_world(cfg), Error);
}

}  // namespace
}  // namespace lethe::world

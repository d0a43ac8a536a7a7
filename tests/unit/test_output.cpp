// core/output.h and core/range.h: outputs apart from inputs, staged folders, stale temporaries,
// guarded copies, folder locks, setting domains; data readers' type errors (issue 12).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/output.h"
#include "lethe/core/range.h"
#include "lethe/data/records.h"
#include "support/errors.h"
#include "support/fixtures.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;


TEST(Output, ApartFromInputs) {
  const fs::path d = temp_dir("apart");
  fs::create_directories(d / "run" / "model");
  const std::vector<NamedPath> in = {{"model", d / "run" / "model"}, {"data.forget", d / "forget.jsonl"}};
  EXPECT_NO_THROW(check_output_apart(d / "other", "output_dir", in));
  EXPECT_NE(error_of([&] { check_output_apart(d / "run", "output_dir", in); }).find("contains the input model"),
            std::string::npos);
  EXPECT_NE(error_of([&] { check_output_apart(d / "run" / "model", "output_dir", in); }).find("is the input model"),
            std::string::npos);
  EXPECT_NE(error_of([&] { check_output_apart(d / "run" / "model" / "x", "o", in); }).find("lies inside"),
            std::string::npos);
  EXPECT_NE(error_of([&] { check_output_apart(d, "o", in); }).find("contains the input model"), std::string::npos);
  // Component-wise: "run2" is not inside "run".
  EXPECT_NO_THROW(check_output_apart(d / "run2", "o", {{"model", d / "run"}}));
  EXPECT_NO_THROW(check_output_apart(d / "x", "o", {{"empty", fs::path()}}));
}

TEST(Output, StagedFolderIsAllOrNothing) {
  const fs::path d = temp_dir("staged");
  {
    StagedFolder s(d / "out", false, "--out");
    write_file_atomic(s.path() / "a", "1");
    EXPECT_FALSE(fs::exists(d / "out"));
  }  // not committed: nothing left
  EXPECT_FALSE(fs::exists(d / "out"));
  EXPECT_TRUE(fs::is_empty(d));
  {
    StagedFolder s(d / "out", false, "--out");
    write_file_atomic(s.path() / "a", "1");
    s.commit();
  }
  EXPECT_EQ(read_file(d / "out" / "a"), "1");
  EXPECT_NE(error_of([&] { StagedFolder s(d / "out", false, "--out"); }).find("exists and is not empty"),
            std::string::npos);
  {
    StagedFolder s(d / "out", true, "--out");
    write_file_atomic(s.path() / "b", "2");
    s.commit();
  }
  EXPECT_FALSE(fs::exists(d / "out" / "a")) << "the old folder is replaced as a whole";
  EXPECT_EQ(read_file(d / "out" / "b"), "2");
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(d)) entries += e.path().filename() == "out" ? 1 : 100;
  EXPECT_EQ(entries, 1u) << "no staging or old folder left behind";
  write_file_atomic(d / "file", "x");
  EXPECT_NE(error_of([&] { StagedFolder s(d / "file", true, "--out"); }).find("is a file"), std::string::npos);
}

TEST(Output, StaleTemporariesOfDeadProcessesAreRemoved) {
  const fs::path d = temp_dir("stale");
  // A child that exits: its pid is then free.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  const std::string dead = std::to_string(child), mine = std::to_string(::getpid());
  write_file_atomic(d / (".config.json.tmp." + dead + ".0"), "x");
  fs::create_directories(d / (".model.partial." + dead + ".1"));
  write_file_atomic(d / (".config.json.tmp." + mine + ".0"), "x");
  write_file_atomic(d / "notes.tmp.1.2", "a user file");
  EXPECT_EQ(remove_stale_temporaries(d), 2u);
  EXPECT_TRUE(fs::exists(d / (".config.json.tmp." + mine + ".0")));
  EXPECT_TRUE(fs::exists(d / "notes.tmp.1.2"));
  EXPECT_TRUE(is_temporary_name(".model.partial.12.3"));
  EXPECT_FALSE(is_temporary_name("model"));
  EXPECT_FALSE(is_temporary_name(".partial.12.3"));
}

// A folder of nothing but lethe's temporaries (a run killed before its lock reached the disk)
// is lethe's own; one file of the user's makes it the user's (found as a flaky
// Reliability.KilledRunsLeaveNothingThatLooksComplete under load).
TEST(Output, AFolderOfOnlyLetheTemporariesIsLethes) {
  const fs::path d = temp_dir("owned");
  EXPECT_FALSE(owned_by_lethe(d));  // empty: nobody's yet
  write_file_atomic(d / ".train_log.jsonl.tmp.99999999.0", "torn");
  fs::create_directories(d / ".model.partial.99999999.3");
  EXPECT_TRUE(owned_by_lethe(d));
  write_file_atomic(d / "notes.txt", "the user's");
  EXPECT_FALSE(owned_by_lethe(d));
}

TEST(Output, CopiesDoNotFollowLinksOutOfTheFolder) {
  const fs::path d = temp_dir("links");
  fs::create_directories(d / "model");
  fs::create_directories(d / "elsewhere");
  write_file_atomic(d / "elsewhere" / "secret", "private");
  ::chmod((d / "elsewhere" / "secret").c_str(), 0600);
  fs::create_symlink(d / "elsewhere" / "secret", d / "model" / "tokenizer.model");
  fs::create_directories(d / "dest");
  EXPECT_NE(error_of([&] { copy_input_file(d / "model", "tokenizer.model", d / "dest"); }).find("symbolic link"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(d / "dest" / "tokenizer.model"));
  // A link inside the folder is fine; the copy keeps the private mode.
  write_file_atomic(d / "model" / "real.model", "ok");
  ::chmod((d / "model" / "real.model").c_str(), 0600);
  fs::create_symlink("real.model", d / "model" / "inside.model");
  copy_input_file(d / "model", "inside.model", d / "dest");
  EXPECT_EQ(read_file(d / "dest" / "inside.model"), "ok");
  struct stat st {};
  ASSERT_EQ(::stat((d / "dest" / "inside.model").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The Hugging Face hub cache layout: snapshots/<rev>/file -> ../../blobs/<hash>.
  const fs::path repo = d / "models--x--y";
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots" / "abc");
  write_file_atomic(repo / "blobs" / "f00", "{}");
  fs::create_symlink("../../blobs/f00", repo / "snapshots" / "abc" / "tokenizer.json");
  EXPECT_NO_THROW(copy_input_file(repo / "snapshots" / "abc", "tokenizer.json", d / "dest"));
}

TEST(Output, FolderLockExcludesASecondHolder) {
  const fs::path d = temp_dir("lock");
  {
    FolderLock a(d / "run", "finetune run");
    EXPECT_TRUE(owned_by_lethe(d / "run"));
    // flock is per open file: a second open in another process is refused.
    const pid_t child = ::fork();
    if (child == 0) {
      try {
        FolderLock b(d / "run", "finetune run");
        ::_exit(0);
      } catch (const Error& e) {
        ::_exit(std::string(e.what()).find("is in use by another lethe process (pid ") != std::string::npos ? 3 : 4);
      }
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 3);
  }
  EXPECT_NO_THROW(FolderLock c(d / "run", "finetune run"));  // released
}

TEST(Range, DomainsAndMessages) {
  EXPECT_TRUE(Range::positive().contains(1e-9));
  EXPECT_FALSE(Range::positive().contains(0));
  EXPECT_FALSE(Range::positive().contains(-1));
  EXPECT_FALSE(Range::unit().contains(NAN));
  EXPECT_TRUE(Range::unit().contains(1));
  EXPECT_FALSE(Range::unit_right_open().contains(1));
  EXPECT_FALSE(Range::count().contains(1.5));
  EXPECT_TRUE(Range::count().contains(0));
  EXPECT_EQ(Range::positive().str(), "(0, inf)");
  EXPECT_EQ(Range::unit().str(), "[0, 1]");
  EXPECT_EQ(Range::at_least(1).whole().str(), "an integer in [1, inf)");
  EXPECT_EQ(error_of([] { check_range("method NPO: parameter 'beta'", -1, Range::positive()); }),
            "method NPO: parameter 'beta' = -1 is outside (0, inf)");
}

TEST(Records, TypeErrorsNameFileLineAndField) {
  const fs::path d = temp_dir("records");
  write_file_atomic(d / "a.jsonl", "{\"question\": \"q\", \"answer\": \"a\", \"perturbed_answer\": \"one\"}\n");
  EXPECT_NE(error_of([&] { data::read_qa(d / "a.jsonl"); })
                .find("a.jsonl: line 1: field 'perturbed_answer' must be a list of strings, got a string"),
            std::string::npos);
  write_file_atomic(d / "b.jsonl", "\n{\"question\": \"q\", \"answer\": 3}\n");
  EXPECT_NE(error_of([&] { data::read_qa(d / "b.jsonl"); }).find("b.jsonl: line 2: field 'answer' must be a string, got number"),
            std::string::npos);
  // Multiple choice (WMDP's JSON as it ships): the answer is an index into 2..26 choices.
  write_file_atomic(d / "mc.json", "[{\"question\": \"q\", \"choices\": [\"x\", \"y\", \"z\"], \"answer\": 2}]");
  const auto mc = data::read_mc(d / "mc.json");
  ASSERT_EQ(mc.size(), 1u);
  EXPECT_EQ(mc[0].choices[mc[0].answer], "z");
  write_file_atomic(d / "mc1.jsonl", "{\"question\": \"q\", \"choices\": [\"x\", \"y\"], \"answer\": 2}\n");
  EXPECT_NE(error_of([&] { data::read_mc(d / "mc1.jsonl"); }).find("mc1.jsonl: line 1: field 'answer' is 2, outside the 2 choices"),
            std::string::npos);
  write_file_atomic(d / "mc2.jsonl", "{\"question\": \"q\", \"choices\": [\"x\"], \"answer\": 0}\n");
  EXPECT_NE(error_of([&] { data::read_mc(d / "mc2.jsonl"); }).find("field 'choices' has 1 options"), std::string::npos);
  write_file_atomic(d / "mc3.jsonl", "{\"question\": \"q\", \"choices\": [\"x\", 4], \"answer\": \"A\"}\n");
  EXPECT_NE(error_of([&] { data::read_mc(d / "mc3.jsonl"); }).find("field 'choices' entry 1 must be a string"),
            std::string::npos);
  // TOFU's idontknow.jsonl: plain text, one refusal a line.
  write_file_atomic(d / "idk.jsonl", "I'm not certain about that.\n\nI don't know.\r\n");
  EXPECT_EQ(data::read_texts(d / "idk.jsonl"), (std::vector<std::string>{"I'm not certain about that.", "I don't know."}));
  write_file_atomic(d / "idk2.jsonl", "{\"text\": \"x\"}\n\"y\"\n");
  EXPECT_EQ(data::read_texts(d / "idk2.jsonl"), (std::vector<std::string>{"x", "y"}));
}

}  // namespace
}  // namespace lethe::test

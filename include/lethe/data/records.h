// Reading datasets: JSONL (one object per line) or a JSON array of objects, auto-detected, with
// errors that name the file, the line (or array index) and the field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lethe::data {

// TOFU / MUSE-knowmem QA. `paraphrased_question`, `paraphrased_answer` and `perturbed_answers`
// are empty when the file does not carry them.
struct QARecord {
  std::string question;
  std::string answer;
  std::string paraphrased_question;
  std::string paraphrased_answer;
  std::vector<std::string> perturbed_answers;
};

// A multiple-choice question (WMDP's and MMLU's JSON as they ship): `answer` indexes `choices`.
struct MCRecord {
  std::string question;
  std::vector<std::string> choices;
  std::size_t answer = 0;
};

// Prefix -> continuation (MUSE verbmem: "prompt" / "gt").
struct CompletionRecord {
  std::string prompt;
  std::string continuation;
};

// QA records: "question" and "answer" are required; "paraphrased_question",
// "paraphrased_answer" and "perturbed_answer" (a string or a list) are read when present.
std::vector<QARecord> read_qa(const std::filesystem::path& path);
// MC records: "question", "choices" (at least 2 strings, at most 26: one letter each) and
// "answer" (an integer index into them) are required.
std::vector<MCRecord> read_mc(const std::filesystem::path& path);
// Completion records from `prompt_key` / `continuation_key` (default MUSE's "prompt" / "gt").
std::vector<CompletionRecord> read_completions(const std::filesystem::path& path,
                                               const std::string& prompt_key = "prompt",
                                               const std::string& continuation_key = "gt");
// One string field of every record (a bare JSON string counts as the record itself). A file
// whose first character cannot begin JSON ({, [ or ") is plain text: one record a non-blank
// line, as TOFU ships idontknow.jsonl.
std::vector<std::string> read_texts(const std::filesystem::path& path, const std::string& key = "text");

// A document put into the training text `repetitions` times over a whole run (a controlled
// insertion, Hubble's "perturbation data": data.insert_text, docs/training.md).
struct InsertRecord {
  std::string text;
  std::int64_t repetitions = 1;
};
// Records with the string `key` and a whole "repetitions" >= 1, both required.
std::vector<InsertRecord> read_insertions(const std::filesystem::path& path, const std::string& key = "text");

}  // namespace lethe::data

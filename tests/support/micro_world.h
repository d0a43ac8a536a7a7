// A micro world for training tests: synthetic QA about fictitious people, a SentencePiece BPE
// tokenizer trained on it, and a tiny Llama config — everything built in a temp folder in a
// second, with no fixtures.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "lethe/data/records.h"

namespace lethe::test {

struct MicroWorld {
  std::filesystem::path dir;        // holds model/ (config.json + tokenizer.model), data files
  std::filesystem::path model_dir;  // config.json, tokenizer.model, tokenizer_config.json
  std::filesystem::path all, forget, retain, idk;  // JSONL files
  std::vector<data::QARecord> records;             // all 20: forget = first 5, retain = rest
};

// `hidden`/`layers` size the model; vocab is the tokenizer's.
MicroWorld make_micro_world(const std::string& tag, int people = 20, int hidden = 64, int layers = 2);

}  // namespace lethe::test

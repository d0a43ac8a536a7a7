// libFuzzer targets for the parsers of untrusted input, one binary (compiled once) with the
// target chosen by LETHE_FUZZ_TARGET:
//   tokenizer_json   tokenizer.json (models, normalizers, pre-tokenizers and their regexes,
//                    post-processors, decoders), then encode and decode through it
//   sentencepiece    a SentencePiece .model file (the libsentencepiece plugin parses it)
//   llama2c_vocab    a llama2.c tokenizer .bin
//   jsonl            JSONL / JSON-array records as QA, completion and text readers read them
//   run_config       a YAML run config; lines after a line "---overrides---" are key=value
//                    overrides; then sections read as a run reads them
//   tofu_log         TOFU's legacy eval_log_aggregated.json
//   chat_template    a Jinja chat template (or a tokenizer_config.json holding one), parsed and
//                    rendered for a few conversations
// Every input must end in a value or one lethe::Error: never a crash, hang, leak or undefined
// behaviour (ASan + UBSan). Build and run: docs/testing.md ("Fuzzing").
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "lethe/core/config.h"
#include "lethe/core/error.h"
#include "lethe/data/records.h"
#include "lethe/eval/tofu.h"
#include "lethe/text/chat_template.h"
#include "text/hf_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"

namespace {
namespace fs = std::filesystem;

enum class Target { kNone, kTokenizerJson, kSentencePiece, kLlama2cVocab, kJsonl, kRunConfig, kTofuLog, kChatTemplate };
Target g_target = Target::kNone;
fs::path g_file;  // the file-based parsers read the input from here

void write_input(const std::uint8_t* data, std::size_t size) {
  std::ofstream out(g_file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

void exercise(const lethe::text::Tokenizer& tok) {
  for (const char* s : {"Hello, world! 123", "  tabs\tand\nnew lines  ", "caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x99\x82", ""}) {
    const auto ids = tok.encode(s, true);
    (void)tok.decode(ids, false);
    (void)tok.decode(ids, true);
  }
  for (std::int64_t id : {std::int64_t{-1}, std::int64_t{0}, tok.vocab_size() - 1, tok.vocab_size()}) {
    (void)tok.id_to_token(id);
    (void)tok.is_special(id);
  }
}

void run_config(const std::string& text) {
  const std::string marker = "\n---overrides---\n";
  const auto cut = text.find(marker);
  lethe::Json root = lethe::parse_yaml(text.substr(0, cut), "fuzz.yaml");
  if (cut != std::string::npos) {
    std::size_t pos = cut + marker.size();
    while (pos <= text.size()) {
      const auto nl = text.find('\n', pos);
      const std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      if (!line.empty()) lethe::apply_override(root, line);
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
  }
  if (!root.is_object()) return;
  // The sections and reads of a run config (train/run.cpp), each checked as it is read.
  lethe::ConfigSection top(root, "");
  (void)top.get_path("model");
  (void)top.get<std::int64_t>("seed", 0, lethe::Range::count());
  lethe::ConfigSection d = top.sub("data");
  (void)d.get<std::int64_t>("max_length", 512, lethe::Range::at_least(2).whole());
  (void)d.get_path("forget");
  d.done();
  lethe::ConfigSection t = top.sub("train");
  (void)t.get<double>("lr", 1e-5, lethe::Range::positive());
  (void)t.get<double>("warmup_ratio", 0.0, lethe::Range::unit());
  (void)t.get<bool>("resume", true);
  (void)t.get<std::string>("schedule", "linear");
  t.done();
  (void)top.raw("method");
}

void chat_template(const std::string& text) {
  using OJson = nlohmann::ordered_json;
  std::string source = text;
  OJson special = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  if (!text.empty() && text[0] == '{') {  // a tokenizer_config.json seed
    try {
      const OJson cfg = OJson::parse(text);
      if (cfg.is_object() && cfg.contains("chat_template") && cfg["chat_template"].is_string())
        source = cfg["chat_template"].get<std::string>();
    } catch (const OJson::exception&) {
    }
  }
  lethe::text::ChatTemplate t(source, special, "fuzz.jinja");
  static const OJson conversations[] = {
      OJson::parse(R"([{"role": "user", "content": "Hi"}])"),
      OJson::parse(R"([{"role": "system", "content": " S "}, {"role": "user", "content": "Q</think>"},
                       {"role": "assistant", "content": "<think>r</think>A", "tool_calls": [{"type": "function",
                        "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "content": "out"},
                       {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image"}]}])"),
      OJson::array()};
  for (const auto& m : conversations) {
    for (bool agp : {false, true}) {
      lethe::text::ChatTemplate::RenderOptions o;
      o.add_generation_prompt = agp;
      o.now = [] { return std::time_t{1796126400}; };
      try {
        (void)t.render(m, o);
      } catch (const lethe::Error&) {
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* t = std::getenv("LETHE_FUZZ_TARGET");
  const std::string name = t ? t : "";
  g_target = name == "tokenizer_json"  ? Target::kTokenizerJson
             : name == "sentencepiece" ? Target::kSentencePiece
             : name == "llama2c_vocab" ? Target::kLlama2cVocab
             : name == "jsonl"         ? Target::kJsonl
             : name == "run_config"    ? Target::kRunConfig
             : name == "tofu_log"      ? Target::kTofuLog
             : name == "chat_template" ? Target::kChatTemplate
                                       : Target::kNone;
  if (g_target == Target::kNone) {
    std::fprintf(stderr,
                 "set LETHE_FUZZ_TARGET to tokenizer_json, sentencepiece, llama2c_vocab, jsonl, run_config, "
                 "tofu_log or chat_template\n");
    std::exit(2);
  }
  g_file = fs::temp_directory_path() / ("lethe-fuzz-" + name + "-" + std::to_string(::getpid()));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    switch (g_target) {
      case Target::kTokenizerJson:
        exercise(lethe::text::HfTokenizer(text, "fuzz.json"));
        break;
      case Target::kSentencePiece:
        write_input(data, size);
        exercise(lethe::text::SentencePieceTokenizer(g_file));
        break;
      case Target::kLlama2cVocab:
        write_input(data, size);
        exercise(lethe::text::Llama2cTokenizer(g_file));
        break;
      case Target::kJsonl:
        write_input(data, size);
        try {
          (void)lethe::data::read_qa(g_file);
        } catch (const lethe::Error&) {
        }
        try {
          (void)lethe::data::read_completions(g_file);
        } catch (const lethe::Error&) {
        }
        (void)lethe::data::read_texts(g_file);
        break;
      case Target::kRunConfig:
        run_config(text);
        break;
      case Target::kTofuLog:
        write_input(data, size);
        if (lethe::eval::is_tofu_legacy_log(g_file)) (void)lethe::eval::read_tofu_legacy_log(g_file);
        break;
      case Target::kChatTemplate:
        chat_template(text);
        break;
      case Target::kNone:
        break;
    }
  } catch (const lethe::Error&) {
  }
  return 0;
}

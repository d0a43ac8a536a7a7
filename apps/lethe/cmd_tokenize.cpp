// lethe tokenize: text -> ids and pieces with any supported tokenizer.
#include <nlohmann/json.hpp>

#include <iostream>

#include "commands.h"
#include "lethe/core/error.h"
#include "lethe/text/tokenizer.h"

namespace lethe::cli {

void add_tokenize(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("tokenize", "Tokenize text (ids and pieces)");
  struct Opts {
    std::string tokenizer, text;
    bool no_special = false, jsonl = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Model folder, tokenizer.json, SentencePiece .model or llama2.c .bin")
      ->required();
  cmd->add_flag("--no-special", o->no_special, "Do not add BOS/EOS (special tokens in the text are still recognised)");
  cmd->add_flag("--jsonl", o->jsonl, "Read {\"text\": ...} lines on stdin, write one {\"ids\": [...]} line each (a blank line: {\"ids\":null})");
  cmd->add_option("TEXT", o->text, "Text to tokenize");
  cmd->callback([o] {
    auto tok = text::load_tokenizer(o->tokenizer);
    const bool special = !o->no_special;
    if (o->jsonl) {
      LETHE_CHECK(o->text.empty(), "tokenize: give TEXT or --jsonl, not both");
      std::string line;
      std::size_t n = 0;
      while (std::getline(std::cin, line)) {
        ++n;
        // One output line per input line, so outputs stay aligned with inputs.
        if (line.find_first_not_of(" \t\r") == std::string::npos) {
          std::cout << "{\"ids\":null}\n";
          continue;
        }
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          fail("stdin line ", n, ": not valid JSON (", e.what(), ")");
        }
        LETHE_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), "stdin line ", n,
                    ": expected an object with a string field \"text\"");
        std::vector<std::int64_t> ids;
        try {
          ids = tok->encode(j["text"].get<std::string>(), special);
        } catch (const Error& e) {
          fail("stdin line ", n, ": ", e.what());
        }
        std::cout << nlohmann::json{{"ids", ids}}.dump() << "\n";
      }
      return;
    }
    const auto ids = tok->encode(o->text, special);
    std::string id_line, piece_line;
    for (auto id : ids) {
      id_line += (id_line.empty() ? "" : " ") + std::to_string(id);
      piece_line += (piece_line.empty() ? "" : " ") + tok->id_to_token(id);
    }
    std::cout << "ids     " << id_line << "\n"
              << "pieces  " << piece_line << "\n"
              << "count   " << ids.size() << "\n";
  });
}

}  // namespace lethe::cli

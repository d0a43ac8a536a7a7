// load_tokenizer: format dispatch and the special tokens of a model folder.
#include "lethe/text/tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/output.h"
#include "text/hf_tokenizer.h"
#include "text/unicode.h"
#include "text/sentencepiece_tokenizer.h"

namespace lethe::text {
namespace fs = std::filesystem;

Tokenizer::~Tokenizer() = default;

void check_utf8(std::string_view text, const std::string& what) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_valid_length(text, i);
    if (n == 0) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(text[i])));
      fail(what, " is not valid UTF-8: byte offset ", i, " (", hex, ")");
    }
    i += n;
  }
}

std::vector<std::int64_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  check_utf8(text, "the text to tokenize");
  return encode_valid(text, add_special_tokens);
}

namespace {

Json read_json_if_exists(const fs::path& p) {
  if (!fs::exists(p)) return Json::object();
  Json j = parse_json_file(p);
  LETHE_CHECK(j.is_object(), p.string(), ": expected a JSON object");
  return j;
}

// A special token entry of tokenizer_config.json / special_tokens_map.json: a string or an
// AddedToken object {"content": ...}.
std::string token_text(const Json& cfg, const std::string& key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return "";
}

std::optional<std::int64_t> first_id(const Json& cfg, const std::string& key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) return (*it)[0].get<std::int64_t>();
  return std::nullopt;
}

bool is_llama_class(const std::string& cls) {
  for (const char* c : {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                        "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"}) {
    if (cls == c) return true;
  }
  return false;
}

// Special tokens and decode/encode switches from the folder's configuration files, as
// transformers reads them.
void apply_folder_config(Tokenizer& tok, const fs::path& dir) {
  const Json cfg = read_json_if_exists(dir / "tokenizer_config.json");
  const Json map = read_json_if_exists(dir / "special_tokens_map.json");
  const Json gen = read_json_if_exists(dir / "generation_config.json");
  SpecialTokens s = tok.special();
  struct Slot {
    const char* name;
    std::optional<std::int64_t>* id;
    std::string* text;
  };
  for (Slot slot : {Slot{"bos", &s.bos, &s.bos_token}, Slot{"eos", &s.eos, &s.eos_token},
                    Slot{"pad", &s.pad, &s.pad_token}, Slot{"unk", &s.unk, &s.unk_token}}) {
    const std::string key = std::string(slot.name) + "_token";
    std::string text = token_text(cfg, key);
    if (text.empty()) text = token_text(map, key);
    if (!text.empty()) {
      auto id = tok.token_to_id(text);
      LETHE_CHECK(id.has_value(), (dir / "tokenizer_config.json").string(), ": ", key, " '",
                  text, "' is not in the tokenizer's vocabulary");
      *slot.id = id;
      *slot.text = text;
    } else if (auto id = first_id(gen, key + "_id")) {
      *slot.id = id;
      *slot.text = tok.id_to_token(*id);
    }
  }
  tok.set_special(s);

  const std::string cls = json_optional<std::string>(cfg, "tokenizer_class", "", (dir / "tokenizer_config.json").string());
  const bool clean = cfg.contains("clean_up_tokenization_spaces") &&
                     cfg["clean_up_tokenization_spaces"].is_boolean() &&
                     cfg["clean_up_tokenization_spaces"].get<bool>();
  auto flag = [&](const char* k, bool d) {
    return cfg.contains(k) && cfg[k].is_boolean() ? cfg[k].get<bool>() : d;
  };
  if (auto* hf = dynamic_cast<HfTokenizer*>(&tok)) {
    hf->set_clean_up_tokenization_spaces(clean);
    if (is_llama_class(cls) && (cfg.contains("add_bos_token") || cfg.contains("add_eos_token"))) {
      hf->set_bos_eos(flag("add_bos_token", true) ? s.bos : std::nullopt,
                      flag("add_eos_token", false) ? s.eos : std::nullopt);
    }
  } else if (auto* sp = dynamic_cast<SentencePieceTokenizer*>(&tok)) {
    sp->set_clean_up_tokenization_spaces(clean);
    sp->set_add_bos_eos(flag("add_bos_token", true), flag("add_eos_token", false));
  }
}

std::string extension(const fs::path& p) { return p.extension().string(); }

}  // namespace

std::vector<std::int64_t> special_stop_ids(const Tokenizer& tok, const std::vector<std::string>& stop_strings) {
  std::vector<std::int64_t> ids;
  for (const auto& s : stop_strings) {
    const auto e = tok.encode(s, /*add_special_tokens=*/false);
    if (e.size() == 1 && tok.is_special(e[0]) && std::find(ids.begin(), ids.end(), e[0]) == ids.end()) ids.push_back(e[0]);
  }
  return ids;
}

bool has_tokenizer(const fs::path& dir) {
  return fs::exists(dir / "tokenizer.json") || fs::exists(dir / "tokenizer.model");
}

std::int64_t padding_id(const Tokenizer& tok) {
  const auto& s = tok.special();
  if (s.pad) return *s.pad;
  if (s.eos) return *s.eos;
  return 0;
}

std::shared_ptr<const Tokenizer> load_tokenizer(const fs::path& path) {
  LETHE_CHECK(fs::exists(path), path.string(), ": no such file or folder");
  if (fs::is_directory(path)) {
    std::shared_ptr<Tokenizer> tok;
    if (fs::exists(path / "tokenizer.json")) {
      tok = std::make_shared<HfTokenizer>(read_file(path / "tokenizer.json"),
                                          (path / "tokenizer.json").string());
    } else if (fs::exists(path / "tokenizer.model")) {
      tok = std::make_shared<SentencePieceTokenizer>(path / "tokenizer.model");
    } else {
      fail(path.string(), ": no tokenizer.json or tokenizer.model in this folder");
    }
    json_named(path.string() + " (tokenizer_config.json, special_tokens_map.json, generation_config.json)",
               [&] { apply_folder_config(*tok, path); });
    return tok;
  }
  const std::string ext = extension(path);
  if (ext == ".json") return std::make_shared<HfTokenizer>(read_file(path), path.string());
  if (ext == ".model") return std::make_shared<SentencePieceTokenizer>(path);
  if (ext == ".bin") return std::make_shared<Llama2cTokenizer>(path);
  fail(path.string(), ": unknown tokenizer format (expected a model folder, a tokenizer.json, a "
       "SentencePiece .model or a llama2.c .bin)");
}

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
      "vocab.json",     "merges.txt",            "added_tokens.json"};
  return names;
}

std::vector<std::string> check_tokenizer_files(const fs::path& folder) {
  std::vector<std::string> present;
  if (!fs::is_directory(folder)) return present;
  for (const auto& f : tokenizer_file_names()) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(folder / f, ec))) continue;
    const fs::path real = checked_input_file(folder, f);
    if (extension(fs::path(f)) == ".json") {
      (void)parse_json_file(real);
    } else if (f == "merges.txt") {
      LETHE_CHECK(read_file(real).find('\0') == std::string::npos, (folder / f).string(), ": not a text file");
    }
    present.push_back(f);
  }
  return present;
}

void install_tokenizer(const fs::path& source, const fs::path& dir, std::int64_t model_vocab_size) {
  // Parsed before anything is copied: a folder's tokenizer.json / tokenizer.model here, its
  // JSON side files below.
  auto tok = load_tokenizer(source);
  LETHE_CHECK(tok->vocab_size() <= model_vocab_size, source.string(), ": the tokenizer has ",
              tok->vocab_size(), " tokens but the model only ", model_vocab_size);
  fs::create_directories(dir);
  Json cfg = Json::object();
  const std::string ext = extension(source);
  if (fs::is_directory(source)) {
    if (fs::exists(dir) && fs::equivalent(source, dir)) return;
    for (const auto& f : check_tokenizer_files(source)) copy_input_file(source, f, dir);
    return;
  }
  if (ext == ".json") {
    copy_file_atomic(source, dir / "tokenizer.json");
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  } else if (ext == ".model") {
    copy_file_atomic(source, dir / "tokenizer.model");
    cfg["tokenizer_class"] = "LlamaTokenizer";
    cfg["legacy"] = true;
    cfg["add_bos_token"] = true;
    cfg["add_eos_token"] = false;
  } else {
    const auto& l2c = dynamic_cast<const Llama2cTokenizer&>(*tok);
    write_file_atomic(dir / "tokenizer.json", l2c.to_tokenizer_json());
    cfg["tokenizer_class"] = "LlamaTokenizerFast";
    cfg["legacy"] = true;
    cfg["add_bos_token"] = true;
    cfg["add_eos_token"] = false;
  }
  const SpecialTokens& s = tok->special();
  if (!s.bos_token.empty()) cfg["bos_token"] = s.bos_token;
  if (!s.eos_token.empty()) cfg["eos_token"] = s.eos_token;
  if (!s.unk_token.empty()) cfg["unk_token"] = s.unk_token;
  if (!s.pad_token.empty()) cfg["pad_token"] = s.pad_token;
  cfg["clean_up_tokenization_spaces"] = false;
  write_file_atomic(dir / "tokenizer_config.json", cfg.dump(2) + "\n");
}

}  // namespace lethe::text

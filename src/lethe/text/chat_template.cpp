#include "lethe/text/chat_template.h"

#include <chrono>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "text/jinja/ast.h"

namespace lethe::text {

namespace fs = std::filesystem;
using OJson = nlohmann::ordered_json;

ChatTemplate::ChatTemplate(const std::string& source, OJson special_tokens, std::string where)
    : source_(source), special_tokens_(std::move(special_tokens)), where_(std::move(where)) {
  LETHE_CHECK(special_tokens_.is_object(), where_, ": special tokens must be an object");
  program_ = std::make_unique<jinja::Program>(jinja::parse(source_, where_));
}

ChatTemplate::~ChatTemplate() = default;

std::string ChatTemplate::render(const OJson& messages, bool add_generation_prompt) const {
  RenderOptions o;
  o.add_generation_prompt = add_generation_prompt;
  return render(messages, o);
}

std::string ChatTemplate::render(const OJson& messages, const RenderOptions& options) const {
  LETHE_CHECK(messages.is_array(), where_, ": the messages must be a JSON array, got ", messages.type_name());
  for (std::size_t k = 0; k < messages.size(); ++k)
    LETHE_CHECK(messages[k].is_object(), where_, ": message ", k, " must be an object ({\"role\": ..., \"content\": ...})");
  LETHE_CHECK(options.variables.is_object(), where_, ": template variables must be an object");
  // As apply_chat_template: special tokens, then the caller's variables, then the fixed ones.
  jinja::Dict vars;
  auto put = [&](const std::string& k, jinja::Value v) {
    for (auto& kv : vars)
      if (kv.first == k) {
        kv.second = std::move(v);
        return;
      }
    vars.emplace_back(k, std::move(v));
  };
  for (const auto& [k, v] : special_tokens_.items()) put(k, jinja::from_json(v));
  for (const auto& [k, v] : options.variables.items()) put(k, jinja::from_json(v));
  put("messages", jinja::from_json(messages));
  put("add_generation_prompt", jinja::Value::boolean(options.add_generation_prompt));
  jinja::RenderEnv env;
  env.strftime_now = [&options](const std::string& fmt) {
    const std::time_t t = options.now ? options.now() : std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    std::string buf(256 + fmt.size() * 4, '\0');
    const std::size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    LETHE_CHECK(n > 0 || fmt.empty(), "strftime_now('", fmt, "'): the format gives nothing or too much");
    buf.resize(n);
    return buf;
  };
  return jinja::render(*program_, vars, env, where_);
}

namespace {

OJson read_ordered(const fs::path& p) {
  try {
    return OJson::parse(read_file(p));
  } catch (const OJson::exception& e) {
    fail(p.string(), ": not valid JSON (", e.what(), ")");
  }
}

// The *_token entries of a tokenizer config (strings, or AddedToken objects' content) and its
// additional_special_tokens, as transformers' special_tokens_map has them; unset ones are absent.
void collect_special_tokens(const OJson& cfg, OJson& out) {
  if (!cfg.is_object()) return;
  auto text = [](const OJson& v) -> std::optional<std::string> {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::nullopt;
  };
  for (const auto& [k, v] : cfg.items()) {
    const bool token_key = k.size() > 6 && k.compare(k.size() - 6, 6, "_token") == 0;
    if (token_key && !out.contains(k)) {
      if (auto t = text(v)) out[k] = *t;
    }
    if (k == "additional_special_tokens" && v.is_array() && !out.contains(k)) {
      OJson list = OJson::array();
      for (const auto& x : v)
        if (auto t = text(x)) list.push_back(*t);
      out[k] = list;
    }
  }
}

// The template text of a config's "chat_template" value; `where` names the file.
std::string template_text(const OJson& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {  // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
    for (const auto& t : v) {
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
        return t["template"].get<std::string>();
    }
    fail(where, ": chat_template is a list without a template named \"default\"");
  }
  fail(where, ": chat_template must be a string or a list of {name, template}, got ", v.type_name());
}

}  // namespace

fs::path chat_template_file(const fs::path& dir) {
  const fs::path cfg = dir / "tokenizer_config.json";
  if (fs::exists(cfg)) {
    const OJson j = read_ordered(cfg);
    if (j.is_object() && j.contains("chat_template") && !j["chat_template"].is_null()) return cfg;
  }
  for (const char* name : {"chat_template.jinja", "chat_template.json"})
    if (fs::exists(dir / name)) return dir / name;
  return {};
}

std::shared_ptr<const ChatTemplate> load_chat_template_config(const fs::path& tokenizer_config) {
  const OJson cfg = read_ordered(tokenizer_config);
  LETHE_CHECK(cfg.is_object(), tokenizer_config.string(), ": expected a JSON object");
  LETHE_CHECK(cfg.contains("chat_template") && !cfg["chat_template"].is_null(), tokenizer_config.string(),
              ": no chat_template (this tokenizer ships none; use a named template instead)");
  OJson special = OJson::object();
  collect_special_tokens(cfg, special);
  return std::make_shared<ChatTemplate>(template_text(cfg["chat_template"], tokenizer_config.string()), special,
                                        tokenizer_config.string() + ": chat_template");
}

std::shared_ptr<const ChatTemplate> load_chat_template(const fs::path& dir) {
  const fs::path file = chat_template_file(dir);
  LETHE_CHECK(!file.empty(), dir.string(), " has no chat template (no chat_template in tokenizer_config.json, no "
              "chat_template.jinja): use a named template (plain, llama2-chat, llama3-chat) instead");
  // Special tokens as transformers' special_tokens_map: tokenizer_config.json first, then
  // special_tokens_map.json for the ones it does not set.
  OJson special = OJson::object();
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"})
    if (fs::exists(dir / name)) collect_special_tokens(read_ordered(dir / name), special);
  std::string source, where = file.string();
  if (file.filename() == "tokenizer_config.json") {
    source = template_text(read_ordered(file)["chat_template"], file.string());
    where += ": chat_template";
  } else if (file.extension() == ".jinja") {
    source = read_file(file);
  } else {
    const OJson j = read_ordered(file);
    LETHE_CHECK(j.is_object() && j.contains("chat_template"), file.string(), ": expected {\"chat_template\": ...}");
    source = template_text(j["chat_template"], file.string());
  }
  return std::make_shared<ChatTemplate>(source, special, where);
}

}  // namespace lethe::text

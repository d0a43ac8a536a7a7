// Chat templates: the Jinja program a model folder ships in tokenizer_config.json
// ("chat_template") or chat_template.jinja, rendered as transformers' apply_chat_template renders
// it (Jinja2 with trim_blocks, lstrip_blocks and loop controls; raise_exception, strftime_now and
// transformers' tojson; the messages, add_generation_prompt and every special token as
// variables).
//
// lethe interprets a subset of Jinja (docs/chat-templates.md lists it): enough for the templates
// real models ship. Anything outside it is an error when the template is loaded, naming the
// construct and the line, never a silent mis-render.
#pragma once

#include <nlohmann/json.hpp>

#include <ctime>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace lethe::text {

namespace jinja {
struct Program;
}

class ChatTemplate {
 public:
  struct RenderOptions {
    bool add_generation_prompt = false;
    // Further template variables (tools, documents, enable_thinking, date_string, ...): an object.
    nlohmann::ordered_json variables = nlohmann::ordered_json::object();
    // The clock behind strftime_now(); unset: the local time now, as transformers uses.
    std::function<std::time_t()> now;
  };

  // Parses `source`. `special_tokens` ({"bos_token": "<s>", ...}) become template variables;
  // `where` names the template in errors ("DIR/tokenizer_config.json: chat_template").
  ChatTemplate(const std::string& source, nlohmann::ordered_json special_tokens, std::string where);
  ~ChatTemplate();
  ChatTemplate(const ChatTemplate&) = delete;
  ChatTemplate& operator=(const ChatTemplate&) = delete;

  // `messages`: an array of objects ({"role": ..., "content": ...}, as the OpenAI API and
  // transformers take them). A template's raise_exception and every runtime error is a
  // lethe::Error naming the template and line.
  std::string render(const nlohmann::ordered_json& messages, const RenderOptions& options) const;
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt) const;

  const std::string& source() const { return source_; }
  const std::string& where() const { return where_; }

 private:
  std::string source_;
  nlohmann::ordered_json special_tokens_;
  std::string where_;
  std::unique_ptr<jinja::Program> program_;
};

// Where a folder keeps its chat template: tokenizer_config.json's "chat_template" (a string, or
// a list of {name, template} whose "default" is taken), else chat_template.jinja (newer
// transformers), else chat_template.json ({"chat_template": ...}). Empty when there is none.
std::filesystem::path chat_template_file(const std::filesystem::path& dir);

// Loads the template of a model (or tokenizer) folder, with its special tokens; an error naming
// the folder when it has none.
std::shared_ptr<const ChatTemplate> load_chat_template(const std::filesystem::path& dir);
// Loads the template of one tokenizer_config.json (its "chat_template" and special tokens).
std::shared_ptr<const ChatTemplate> load_chat_template_config(const std::filesystem::path& tokenizer_config);

}  // namespace lethe::text

// lethe chat-template: render a model folder's (or one tokenizer_config.json's) chat template
// for a conversation, exactly as generation and training see it, so any template can be checked
// from the shell.
#include <nlohmann/json.hpp>

#include <iostream>
#include <iterator>

#include "commands.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/text/chat_template.h"

namespace lethe::cli {

void add_chat_template(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("chat-template", "Render a chat template for a conversation (prints the exact text)");
  struct Opts {
    std::string model, config, messages;
    bool add_generation_prompt = false;
  };
  auto o = std::make_shared<Opts>();
  auto* model_opt = cmd->add_option("--model", o->model, "Model or tokenizer folder (tokenizer_config.json or chat_template.jinja)");
  auto* config_opt = cmd->add_option("--config", o->config, "A tokenizer_config.json with a chat_template");
  model_opt->excludes(config_opt);
  cmd->add_option("--messages", o->messages,
                  "JSON file ('-': stdin): an array of {role, content} messages, or an object with \"messages\" and "
                  "further template variables (tools, documents, enable_thinking, ...)")
      ->required();
  cmd->add_flag("--add-generation-prompt", o->add_generation_prompt, "End with the start of an assistant turn");
  cmd->callback([o] {
    LETHE_CHECK(!o->model.empty() || !o->config.empty(), "chat-template: give --model DIR or --config tokenizer_config.json");
    const std::string where = o->messages == "-" ? std::string("stdin") : o->messages;
    const std::string raw = o->messages == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), {}) : read_file(o->messages);
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(raw);
    } catch (const nlohmann::ordered_json::exception& e) {
      fail(where, ": not valid JSON (", e.what(), ")");
    }
    text::ChatTemplate::RenderOptions ro;
    ro.add_generation_prompt = o->add_generation_prompt;
    nlohmann::ordered_json messages;
    if (j.is_array()) {
      messages = j;
    } else {
      LETHE_CHECK(j.is_object() && j.contains("messages"), where,
                  ": expected an array of messages or an object with \"messages\"");
      messages = j["messages"];
      for (const auto& [k, v] : j.items())
        if (k != "messages") ro.variables[k] = v;
      LETHE_CHECK(!ro.variables.contains("add_generation_prompt"), where,
                  ": give add_generation_prompt as --add-generation-prompt, not in the file");
    }
    LETHE_CHECK(messages.is_array(), where, ": \"messages\" must be an array");
    const auto t = o->model.empty() ? text::load_chat_template_config(o->config) : text::load_chat_template(o->model);
    std::cout << t->render(messages, ro) << std::flush;
  });
}

}  // namespace lethe::cli

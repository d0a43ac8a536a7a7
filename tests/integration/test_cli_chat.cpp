// Chat templates from the command line: `lethe chat-template` prints exactly what Jinja2
// renders, `lethe generate --chat` feeds that rendering to the model, and errors name the
// folder, the file and the construct.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "integration/cli_runner.h"
#include "lethe/core/file.h"
#include "lethe/text/chat_template.h"
#include "lethe/text/tokenizer.h"
#include "support/fixtures.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;
using OJson = nlohmann::ordered_json;

// The first case of cases.jsonl for `name` with this add_generation_prompt.
OJson fixture_case(const std::string& name, bool agp) {
  std::ifstream in(shared_dir() / "data" / "chat_templates" / "cases.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    OJson c = OJson::parse(line);
    if (c["template"] == name && c["add_generation_prompt"] == agp && c["messages"].size() > 1) return c;
  }
  ADD_FAILURE() << "no case for " << name;
  return {};
}

TEST(CliChat, ChatTemplatePrintsTheRenderingExactly) {
  const fs::path dir = shared_dir() / "data" / "chat_templates";
  LETHE_NEED_FIXTURE(dir / "cases.jsonl");
  const fs::path tmp = temp_dir("chat-cli");
  for (const char* name : {"llama3_1", "gemma3", "qwen3"}) {
    for (bool agp : {true, false}) {
      const OJson c = fixture_case(name, agp);
      std::ofstream(tmp / "m.json") << c["messages"].dump();
      std::vector<std::string> args = {"chat-template", "--config", (dir / (std::string(name) + ".tokenizer_config.json")).string(),
                                        "--messages", (tmp / "m.json").string()};
      if (agp) args.push_back("--add-generation-prompt");
      const Result r = lethe(args);
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_EQ(r.out, c["expected"].get<std::string>()) << name << " agp " << agp;  // no newline added
    }
  }
  // An object carries further variables: Qwen3 without thinking.
  std::ofstream(tmp / "v.json") << R"({"messages": [{"role": "user", "content": "Hi"}], "enable_thinking": false})";
  Result r = lethe({"chat-template", "--config", (dir / "qwen3.tokenizer_config.json").string(), "--messages",
                    (tmp / "v.json").string(), "--add-generation-prompt"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // Errors: a folder without a template, a template outside the subset, bad messages.
  r = lethe({"chat-template", "--model", tmp.string(), "--messages", (tmp / "v.json").string()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find(tmp.string() + " has no chat template"), std::string::npos) << r.err;
  std::ofstream(tmp / "chat_template.jinja") << "{% for m in messages %}\n{{ m.content | wordwrap(5) }}{% endfor %}";
  r = lethe({"chat-template", "--model", tmp.string(), "--messages", (tmp / "v.json").string()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find((tmp / "chat_template.jinja").string() + ":2: unsupported filter 'wordwrap'"), std::string::npos) << r.err;
  std::ofstream(tmp / "bad.json") << R"({"messages": "hello"})";
  r = lethe({"chat-template", "--config", (dir / "qwen3.tokenizer_config.json").string(), "--messages", (tmp / "bad.json").string()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("\"messages\" must be an array"), std::string::npos) << r.err;
}

TEST(CliChat, GenerateRendersTheModelsTemplate) {
  const fs::path dir = shared_dir() / "data" / "llama2c";
  LETHE_NEED_FIXTURE(dir / "stories260K.bin");
  LETHE_NEED_FIXTURE(dir / "tok512.model");
  const fs::path model = temp_dir("chat-gen") / "model";
  Result r = lethe({"convert", "llama2c", (dir / "stories260K.bin").string(), "--tokenizer", (dir / "tok512.model").string(),
                    "--out", model.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  r = lethe({"generate", "--model", model.string(), "--chat", "--user", "Once upon a time", "--max-new-tokens", "4"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("has no chat template"), std::string::npos) << r.err;

  std::ofstream(model / "chat_template.jinja")
      << "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
         "{% if add_generation_prompt %}assistant:{% endif %}";
  const auto tok = text::load_tokenizer(model);
  const auto tmpl = text::load_chat_template(model);
  const OJson msgs = OJson::parse(R"([{"role": "system", "content": "Tell a story."}, {"role": "user", "content": "Once upon a time"}])");
  const auto want = tok->encode(tmpl->render(msgs, true), /*add_special_tokens=*/false);
  ASSERT_EQ(want.front(), 1) << "the template writes BOS itself";
  ASSERT_EQ(std::count(want.begin(), want.end(), 1), 1) << "and nothing adds a second";
  r = lethe({"generate", "--model", model.string(), "--chat", "--system", "Tell a story.", "--user", "Once upon a time",
             "--max-new-tokens", "4", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["prompt_ids"].get<std::vector<std::int64_t>>(), want);
  EXPECT_EQ(j["new_tokens"].size(), 4u);
  // --template chat with --prompt is the same request.
  r = lethe({"generate", "--model", model.string(), "--template", "chat", "--system", "Tell a story.", "--prompt",
             "Once upon a time", "--max-new-tokens", "4", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["prompt_ids"].get<std::vector<std::int64_t>>(), want);
  // Tag templates format the prompt as a question.
  r = lethe({"generate", "--model", model.string(), "--template", "plain", "--prompt", "Who?", "--max-new-tokens", "1", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["prompt_ids"].get<std::vector<std::int64_t>>(), tok->encode("Question: Who?\nAnswer: ", true));
  r = lethe({"generate", "--model", model.string(), "--system", "x", "--prompt", "Who?"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--system needs --chat or --template"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace lethe::test

#include "lethe/text/template.h"

#include "lethe/core/labels.h"

#include "lethe/core/error.h"

namespace lethe::text {

namespace {
struct Named {
  const char* name;
  PromptTemplate (*make)();
};
const Named kTemplates[] = {
    {"plain", [] { return PromptTemplate{"plain", "", "Question: ", "\n", "Answer: ", "\n\n"}; }},
    {"llama2-chat", [] { return PromptTemplate{"llama2-chat", "", "[INST] ", " [/INST]", "", " "}; }},
    {"llama3-chat",
     [] {
       return PromptTemplate{"llama3-chat",
                             "<|begin_of_text|>",
                             "<|start_header_id|>user<|end_header_id|>\n\n",
                             "<|eot_id|>",
                             "<|start_header_id|>assistant<|end_header_id|>\n\n",
                             "<|eot_id|>"};
     }},
};
}  // namespace

PromptTemplate PromptTemplate::named(std::string_view name) {
  for (const auto& t : kTemplates)
    if (name == t.name) return t.make();
  std::string known;
  for (const auto& t : kTemplates) known += (known.empty() ? "" : ", ") + std::string(t.name);
  fail("unknown prompt template '", name, "' (known: ", known,
       "; or give system/user_start/user_end/assistant_start/assistant_end explicitly)");
}

PromptTemplate PromptTemplate::resolve(std::string_view name, const std::filesystem::path& tokenizer_path) {
  // A tokenizer may be named by its file (tokenizer.json): the template sits beside it.
  const std::filesystem::path dir =
      std::filesystem::is_regular_file(tokenizer_path) ? tokenizer_path.parent_path() : tokenizer_path;
  if (name == "chat" || (name == "auto" && !chat_template_file(dir).empty())) {
    PromptTemplate t;
    t.name = "chat";
    t.chat = load_chat_template(dir);
    return t;
  }
  return named(name == "auto" ? "plain" : name);
}

std::vector<std::string> PromptTemplate::names() {
  std::vector<std::string> out;
  for (const auto& t : kTemplates) out.emplace_back(t.name);
  return out;
}

nlohmann::ordered_json chat_messages(const PromptTemplate& t, const std::vector<QA>& few_shot,
                                     std::string_view question) {
  auto msg = [](const char* role, std::string_view content) {
    return nlohmann::ordered_json{{"role", role}, {"content", std::string(content)}};
  };
  auto m = nlohmann::ordered_json::array();
  if (!t.system.empty()) m.push_back(msg("system", t.system));
  for (const auto& ex : few_shot) {
    m.push_back(msg("user", ex.question));
    m.push_back(msg("assistant", ex.answer));
  }
  m.push_back(msg("user", question));
  return m;
}

std::vector<std::string> turn_stop_strings(const PromptTemplate& t) {
  if (t.chat) {
    // What the template writes after an assistant turn's content: render one with a marker.
    const std::string marker = "\x01\x02";
    auto m = chat_messages(t, {}, "?");
    m.push_back({{"role", "assistant"}, {"content", marker}});
    const std::string full = t.chat->render(m, false);
    const std::size_t at = full.rfind(marker);
    if (at == std::string::npos) return {};
    std::string after = full.substr(at + marker.size());
    while (!after.empty() && (after.back() == ' ' || after.back() == '\n')) after.pop_back();
    return after.empty() ? std::vector<std::string>{} : std::vector<std::string>{after};
  }
  std::string s = t.user_start;
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return s.empty() ? std::vector<std::string>{} : std::vector<std::string>{s};
}

std::string format_prompt(const PromptTemplate& t, const std::vector<QA>& few_shot,
                          std::string_view question) {
  if (t.chat) return t.chat->render(chat_messages(t, few_shot, question), /*add_generation_prompt=*/true);
  std::string p = t.system;
  for (const auto& ex : few_shot) {
    p += t.user_start + ex.question + t.user_end + t.assistant_start + ex.answer + t.assistant_end;
  }
  p += t.user_start;
  p += question;
  p += t.user_end + t.assistant_start;
  return p;
}

EncodedQA encode_qa(const Tokenizer& tok, const PromptTemplate& t, const QA& item,
                    std::size_t max_length, const std::vector<QA>& few_shot, SpanRule rule) {
  LETHE_CHECK(max_length > 0, "encode_qa: max_length must be positive");
  const auto eos = tok.special().eos;
  LETHE_CHECK(eos.has_value(), "encode_qa: the tokenizer has no EOS token (set eos_token in "
              "tokenizer_config.json)");
  const std::string prompt = format_prompt(t, few_shot, item.question);
  EncodedQA out;
  if (t.chat) {
    auto m = chat_messages(t, few_shot, item.question);
    m.push_back({{"role", "assistant"}, {"content", item.answer}});
    out.input_ids = tok.encode(t.chat->render(m, false), /*add_special_tokens=*/false);
    out.prompt_ids = tok.encode(prompt, /*add_special_tokens=*/false);
  } else {
    out.input_ids = tok.encode(prompt + item.answer, /*add_special_tokens=*/true);
    out.prompt_ids = tok.encode(prompt, /*add_special_tokens=*/true);
  }
  const std::size_t full = out.input_ids.size();
  auto prompt_part = [&](const std::vector<std::int64_t>& ids) {
    if (rule == SpanRule::kOpenUnlearning) return std::min(out.prompt_ids.size(), ids.size());
    std::size_t n = 0;
    while (n < out.prompt_ids.size() && n < ids.size() && out.prompt_ids[n] == ids[n]) ++n;
    return n;
  };
  const std::size_t full_prompt = prompt_part(out.input_ids);
  const std::size_t full_answer = full - full_prompt - (full > full_prompt && out.input_ids.back() == *eos ? 1 : 0);
  if (out.input_ids.size() > max_length) out.input_ids.resize(max_length);
  if (out.prompt_ids.size() > max_length) out.prompt_ids.resize(max_length);
  const bool had_eos = !out.input_ids.empty() && out.input_ids.back() == *eos;
  if (!had_eos) out.input_ids.push_back(*eos);
  out.prompt_length = prompt_part(out.input_ids);
  out.answer_tokens = out.input_ids.size() - std::min(out.prompt_length, out.input_ids.size()) - 1;
  if (out.prompt_length >= out.input_ids.size()) out.answer_tokens = 0;
  out.answer_tokens_lost = full_answer > out.answer_tokens ? full_answer - out.answer_tokens : 0;
  LETHE_CHECK(full_answer == 0 || out.answer_tokens > 0, "max_length ", max_length, " leaves no token of the answer (",
              full_answer, " tokens after a ", full_prompt, "-token prompt) of the item \"",
              item.question.substr(0, 60), item.question.size() > 60 ? "...\"" : "\"",
              "; raise max_length to at least ", full_prompt + 2);
  out.labels = out.input_ids;
  for (std::size_t i = 0; i < out.prompt_length; ++i) out.labels[i] = kIgnoreIndex;
  return out;
}

}  // namespace lethe::text

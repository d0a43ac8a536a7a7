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

std::vector<std::string> PromptTemplate::names() {
  std::vector<std::string> out;
  for (const auto& t : kTemplates) out.emplace_back(t.name);
  return out;
}

std::string format_prompt(const PromptTemplate& t, const std::vector<QA>& few_shot,
                          std::string_view question) {
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
  out.input_ids = tok.encode(prompt + item.answer, /*add_special_tokens=*/true);
  out.prompt_ids = tok.encode(prompt, /*add_special_tokens=*/true);
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

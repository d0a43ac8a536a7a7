// Prompt templates for QA data, and the tokenization of a QA example with its loss span.
//
// The encoding follows OpenUnlearning's preprocess_chat_instance (non-chat-template path), so
// losses and log-probs are computed over the same tokens as there:
//   prompt  = system + Σ few-shot (user_start q user_end assistant_start a assistant_end)
//             + user_start question user_end assistant_start
//   ids     = encode(prompt + answer, add_special_tokens)[:max_length], + EOS unless it ends in EOS
//   labels  = -100 over the prompt's tokens, ids after
// (The last example's assistant_end is not appended, as there.)
//
// Where the prompt's tokens end is the one place lethe differs by default. OpenUnlearning masks
// the first len(encode(prompt)) tokens; when the prompt ends in a space ("Answer: ") most
// tokenizers merge that space into the answer's first token, so the mask swallows the first
// answer token (and, with SentencePiece, can shift by one). lethe's default,
// SpanRule::kCommonPrefix, masks the longest common prefix of encode(prompt) and
// encode(prompt + answer): every token that carries answer text is scored. SpanRule::
// kOpenUnlearning reproduces the reference exactly. Both agree whenever the boundary does not
// merge (e.g. the Llama-2 chat template, whose prompt ends in "[/INST]").
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lethe/text/chat_template.h"
#include "lethe/text/tokenizer.h"

namespace lethe::text {

struct PromptTemplate {
  std::string name;
  // Tag templates: OpenUnlearning's system_prompt_with_special_tokens, prepended as is. With a
  // chat template: the content of a system message put first (none when empty), as
  // OpenUnlearning's system_prompt.
  std::string system;
  std::string user_start;       // e.g. "Question: " or "[INST] "
  std::string user_end;         // e.g. "\n" or " [/INST]"
  std::string assistant_start;  // e.g. "Answer: "
  std::string assistant_end;    // after few-shot answers, e.g. "\n\n"
  // Set for "chat": the model's own chat template renders every prompt (the tag fields are
  // unused), as OpenUnlearning's apply_chat_template path.
  std::shared_ptr<const ChatTemplate> chat;

  // "plain" (Question: {q}\nAnswer: {a}), "llama2-chat" ([INST] {q} [/INST] {a}),
  // "llama3-chat" (header tags, the Llama-3 instruct format written out as tags);
  // other tag sets are expressible by setting the fields directly.
  static PromptTemplate named(std::string_view name);
  // named(), plus "chat" (the chat template of the tokenizer's folder, an error when it has none) and
  // "auto" (that template when the folder has one, else "plain").
  static PromptTemplate resolve(std::string_view name, const std::filesystem::path& tokenizer_path);
  static std::vector<std::string> names();  // the tag templates; resolve() also takes chat, auto
};

struct QA {
  std::string question;
  std::string answer;
};

struct EncodedQA {
  std::vector<std::int64_t> input_ids;  // prompt + answer (+ EOS)
  std::vector<std::int64_t> labels;     // -100 over the prompt
  std::size_t prompt_length = 0;        // tokens of the prompt alone
  std::vector<std::int64_t> prompt_ids; // for generation: what the model is given
  std::size_t answer_tokens = 0;        // answer tokens kept (labels past the prompt, EOS aside)
  std::size_t answer_tokens_lost = 0;   // answer tokens cut by max_length
};

// What max_length cut from a set of encoded items, for the warning and the run/summary record.
struct Truncation {
  std::size_t items = 0;               // items encoded
  std::size_t truncated_items = 0;     // items that lost answer tokens
  std::size_t answer_tokens_lost = 0;  // in all
  void add(const EncodedQA& e) {
    ++items;
    if (e.answer_tokens_lost > 0) ++truncated_items;
    answer_tokens_lost += e.answer_tokens_lost;
  }
  void add(const Truncation& t) {
    items += t.items;
    truncated_items += t.truncated_items;
    answer_tokens_lost += t.answer_tokens_lost;
  }
};

// The messages a QA prompt is made of with a chat template: the system message (if any), each
// few-shot pair as a user and an assistant turn, the question as the last user turn.
nlohmann::ordered_json chat_messages(const PromptTemplate& t, const std::vector<QA>& few_shot,
                                     std::string_view question);

// Where generation should stop for a template: for tag templates, the start of the next user
// turn; for a chat template, what it writes right after an assistant message ("<|eot_id|>",
// "<end_of_turn>", "<|im_end|>").
std::vector<std::string> turn_stop_strings(const PromptTemplate& t);

// The prompt text for `question` after the few-shot examples (with a chat template: its
// rendering with the generation prompt, whose tokens are encoded without added special tokens,
// as apply_chat_template tokenizes).
std::string format_prompt(const PromptTemplate& t, const std::vector<QA>& few_shot,
                          std::string_view question);

enum class SpanRule { kCommonPrefix, kOpenUnlearning };

// Tokenizes one example. With a chat template the full text is the rendering with the answer as
// the last assistant turn and the prompt is the rendering without it (with the generation
// prompt), both encoded without added special tokens (the template writes them); the answer span
// is where the two differ, as for tag templates. `max_length` (tokens, > 0) truncates as transformers does, before EOS
// is appended; the answer tokens it cuts are counted in answer_tokens_lost. Throws lethe::Error
// when the tokenizer has no EOS token, and when truncation leaves none of a non-empty answer
// (every such item would be scored or trained on its EOS alone).
EncodedQA encode_qa(const Tokenizer& tok, const PromptTemplate& t, const QA& item,
                    std::size_t max_length, const std::vector<QA>& few_shot = {},
                    SpanRule rule = SpanRule::kCommonPrefix);

}  // namespace lethe::text

// lethe generate: decode from a model folder, greedy or sampled, from token ids, text, or
// messages rendered by the model's chat template.
#include <nlohmann/json.hpp>

#include <charconv>
#include <iostream>
#include <limits>

#include "commands.h"
#include "lethe/core/runtime.h"
#include "lethe/model/generate.h"
#include "lethe/core/error.h"
#include "lethe/model/load.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"

namespace lethe::cli {
namespace {

// "1,2,3": every piece a decimal token id in [0, 2^63); "1,,2", "-1", "x" and overflowing
// numbers are errors, not ids.
std::vector<std::int64_t> parse_ids(const std::string& text) {
  std::vector<std::int64_t> ids;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string piece = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(piece.data(), piece.data() + piece.size(), v);
    LETHE_CHECK(!piece.empty() && ec == std::errc() && end == piece.data() + piece.size() && v >= 0,
                "--prompt-ids '", text, "': '", piece, "' is not a token id (a whole number from 0 to ",
                std::numeric_limits<std::int64_t>::max(), ")");
    ids.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ids;
}

}  // namespace

void add_generate(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("generate", "Generate tokens from a model folder");
  struct Opts {
    std::string model, tokenizer;
    std::vector<std::string> prompt_ids;
    std::vector<std::string> prompts;
    std::string tmpl, system;
    std::string dtype = "float32";
    bool chat = false;
    model::GenerateOptions gen;
    bool no_eos = false, json = false, no_special = false;
  };
  auto o = std::make_shared<Opts>();
  o->gen.max_new_tokens = 64;
  cmd->add_option("--model", o->model, "Hugging Face model folder")->required();
  auto* text_opt = cmd->add_option("--prompt", o->prompts,
                                   "Prompt text (repeat the option for a batch); needs a tokenizer")
                       ->allow_extra_args(false);
  auto* ids_opt = cmd->add_option("--prompt-ids", o->prompt_ids,
                                  "Prompt token ids, comma-separated (repeat for a batch)")
                      ->allow_extra_args(false);
  text_opt->excludes(ids_opt);
  auto* user_opt = cmd->add_option("--user", o->prompts, "With --chat: a user message (repeat for a batch of conversations)")
                       ->allow_extra_args(false);
  user_opt->excludes(ids_opt);
  auto* tmpl_opt = cmd->add_option("--template", o->tmpl,
                                   "Format each --prompt as a question: plain, llama2-chat, llama3-chat, chat (the model "
                                   "folder's chat template) or auto (chat when it has one, else plain)");
  auto* chat_opt = cmd->add_flag("--chat", o->chat, "Render each --user (or --prompt) through the model folder's chat "
                                 "template, with the generation prompt (same as --template chat)");
  chat_opt->excludes(tmpl_opt);
  cmd->add_option("--system", o->system, "With --chat / --template: the system message (tag templates: a text put first)");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer (default: the model folder's tokenizer.json / tokenizer.model)");
  cmd->add_option("--stop", o->gen.stop_strings,
                  "Stop a prompt's generation once its text contains this string (repeatable)");
  cmd->add_flag("--no-special", o->no_special, "Do not add BOS/EOS when encoding --prompt");
  cmd->add_option("--max-new-tokens", o->gen.max_new_tokens,
                  "Tokens to generate (default 64; prompt + new tokens must fit the model's positions)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", o->gen.temperature, "0 = greedy (default); > 0 samples (below 1e-5: greedy)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->gen.top_k, "Sample from the k most likely tokens (0 = off)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->gen.top_p, "Nucleus sampling mass (1 = off)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->gen.seed, "Sampling seed (default 0)");
  cmd->add_option("--dtype", o->dtype,
                  "dtype the weights are held in: float32 (default), bfloat16 or float16 (half the memory, computed in float32)")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}));
  cmd->add_flag("--no-eos-stop", o->no_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", o->json, "Print one JSON object per prompt");
  cmd->callback([o, &global] {
    LETHE_CHECK(!o->prompts.empty() || !o->prompt_ids.empty(),
                "generate: give --prompt TEXT, --user TEXT (with --chat) or --prompt-ids IDS");
    if (o->chat) o->tmpl = "chat";
    LETHE_CHECK(o->tmpl.empty() || o->prompt_ids.empty(), "generate: --template and --chat format text prompts; "
                "--prompt-ids are given as tokens");
    LETHE_CHECK(o->system.empty() || !o->tmpl.empty(), "generate: --system needs --chat or --template");
    model::LoadOptions lo;
    lo.device = parse_device(global.device);
    lo.dtype = model::parse_dtype(o->dtype, "--dtype");
    auto m = model::load_model(o->model, lo);
    std::shared_ptr<const text::Tokenizer> tok;
    if (!o->tokenizer.empty()) {
      tok = text::load_tokenizer(o->tokenizer);
    } else if (text::has_tokenizer(o->model)) {
      tok = text::load_tokenizer(o->model);
    }
    LETHE_CHECK(tok || (o->prompts.empty() && o->gen.stop_strings.empty()), o->model,
                " has no tokenizer (tokenizer.json or tokenizer.model): use --prompt-ids, or "
                "--tokenizer PATH");
    if (tok) {
      LETHE_CHECK(tok->vocab_size() <= m->config().vocab_size, "the tokenizer has ",
                  tok->vocab_size(), " tokens but the model only ", m->config().vocab_size);
      o->gen.detokenize = [tok](const std::vector<std::int64_t>& ids) { return tok->decode(ids, true); };
    }
    std::vector<std::vector<std::int64_t>> prompts;
    for (const auto& p : o->prompt_ids) prompts.push_back(parse_ids(p));
    if (!o->tmpl.empty()) {
      text::PromptTemplate t = text::PromptTemplate::resolve(o->tmpl, o->tokenizer.empty() ? o->model : o->tokenizer);
      if (!o->system.empty()) t.system = o->system;
      // The template writes its own special tokens; tag templates get BOS as QA items do.
      for (const auto& p : o->prompts) prompts.push_back(tok->encode(text::format_prompt(t, {}, p), !t.chat && !o->no_special));
      for (const auto& s : text::turn_stop_strings(t)) o->gen.stop_strings.push_back(s);
    } else {
      for (const auto& p : o->prompts) prompts.push_back(tok->encode(p, !o->no_special));
    }
    if (tok && o->gen.eos_token_ids.empty() && !o->gen.stop_strings.empty()) {
      // Stop strings that are special tokens ("<|eot_id|>") never show in decoded text: stop at
      // their ids, beside the model's own end-of-sequence ids.
      const auto special = text::special_stop_ids(*tok, o->gen.stop_strings);
      if (!special.empty()) {
        o->gen.eos_token_ids = m->config().eos_token_ids;
        o->gen.eos_token_ids.insert(o->gen.eos_token_ids.end(), special.begin(), special.end());
      }
    }
    o->gen.stop_at_eos = !o->no_eos;
    if (o->json) {
      // One line per prompt as soon as it finishes (with its index), not after the longest.
      o->gen.on_row_done = [&](std::int64_t row, const std::vector<std::int64_t>& tokens, model::StopReason why) {
        const auto i = static_cast<std::size_t>(row);
        nlohmann::json j = {{"index", row},
                            {"prompt_ids", prompts[i]},
                            {"new_tokens", tokens},
                            {"stop_reason", model::stop_reason_name(why)}};
        if (!o->prompts.empty()) j["prompt"] = o->prompts[i];
        if (tok) j["text"] = tok->decode(tokens, true);
        std::cout << j.dump() << std::endl;
      };
    }
    model::GenerateResult r = model::generate(*m, prompts, o->gen);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const std::string text = tok ? tok->decode(r.tokens[i], true) : std::string();
      if (o->json) {
        continue;  // streamed above
      } else if (!o->prompts.empty()) {
        std::cout << text << "\n";
        std::cerr << "[" << r.tokens[i].size() << " tokens, stopped: "
                  << model::stop_reason_name(r.stop_reasons[i]) << "]\n";
      } else {
        std::string ids;
        for (auto t : r.tokens[i]) ids += (ids.empty() ? "" : ",") + std::to_string(t);
        std::cout << ids << "\n";
        std::cerr << "[" << r.tokens[i].size() << " tokens, stopped: "
                  << model::stop_reason_name(r.stop_reasons[i]) << "]\n";
      }
    }
  });
}

}  // namespace lethe::cli

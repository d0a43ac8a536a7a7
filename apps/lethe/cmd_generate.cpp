// lethe generate: decode from a model folder, greedy or sampled, from token ids.
#include <nlohmann/json.hpp>

#include <iostream>

#include "commands.h"
#include "lethe/core/runtime.h"
#include "lethe/model/generate.h"
#include "lethe/core/error.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"

namespace lethe::cli {

void add_generate(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("generate", "Generate tokens from a model folder");
  struct Opts {
    std::string model, tokenizer;
    std::vector<std::vector<std::int64_t>> prompt_ids;
    std::vector<std::string> prompts;
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
                      ->delimiter(',')
                      ->allow_extra_args(false);
  text_opt->excludes(ids_opt);
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer (default: the model folder's tokenizer.json / tokenizer.model)");
  cmd->add_option("--stop", o->gen.stop_strings,
                  "Stop a prompt's generation once its text contains this string (repeatable)");
  cmd->add_flag("--no-special", o->no_special, "Do not add BOS/EOS when encoding --prompt");
  cmd->add_option("--max-new-tokens", o->gen.max_new_tokens, "Tokens to generate (default 64)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", o->gen.temperature, "0 = greedy (default); > 0 samples")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->gen.top_k, "Sample from the k most likely tokens (0 = off)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->gen.top_p, "Nucleus sampling mass (1 = off)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->gen.seed, "Sampling seed (default 0)");
  cmd->add_flag("--no-eos-stop", o->no_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", o->json, "Print one JSON object per prompt");
  cmd->callback([o, &global] {
    LETHE_CHECK(!o->prompts.empty() || !o->prompt_ids.empty(),
                "generate: give --prompt TEXT or --prompt-ids IDS");
    model::LoadOptions lo;
    lo.device = parse_device(global.device);
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
    std::vector<std::vector<std::int64_t>> prompts = o->prompt_ids;
    for (const auto& p : o->prompts) prompts.push_back(tok->encode(p, !o->no_special));
    o->gen.stop_at_eos = !o->no_eos;
    model::GenerateResult r = model::generate(*m, prompts, o->gen);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const std::string text = tok ? tok->decode(r.tokens[i], true) : std::string();
      if (o->json) {
        nlohmann::json j = {{"prompt_ids", prompts[i]},
                            {"new_tokens", r.tokens[i]},
                            {"stop_reason", model::stop_reason_name(r.stop_reasons[i])}};
        if (!o->prompts.empty()) j["prompt"] = o->prompts[i];
        if (tok) j["text"] = text;
        std::cout << j.dump() << "\n";
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

// lethe generate: decode from a model folder, greedy or sampled, from token ids.
#include <nlohmann/json.hpp>

#include <iostream>

#include "commands.h"
#include "lethe/core/runtime.h"
#include "lethe/model/generate.h"
#include "lethe/model/load.h"

namespace lethe::cli {

void add_generate(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("generate", "Generate tokens from a model folder");
  struct Opts {
    std::string model;
    std::vector<std::vector<std::int64_t>> prompts;
    model::GenerateOptions gen;
    bool no_eos = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  o->gen.max_new_tokens = 64;
  cmd->add_option("--model", o->model, "Hugging Face model folder")->required();
  cmd->add_option("--prompt-ids", o->prompts,
                  "Prompt token ids, comma-separated (repeat the option for a batch)")
      ->required()
      ->delimiter(',')
      ->allow_extra_args(false);
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
    model::LoadOptions lo;
    lo.device = parse_device(global.device);
    auto m = model::load_model(o->model, lo);
    o->gen.stop_at_eos = !o->no_eos;
    model::GenerateResult r = model::generate(*m, o->prompts, o->gen);
    for (std::size_t i = 0; i < o->prompts.size(); ++i) {
      if (o->json) {
        nlohmann::json j = {{"prompt_ids", o->prompts[i]},
                            {"new_tokens", r.tokens[i]},
                            {"stop_reason", model::stop_reason_name(r.stop_reasons[i])}};
        std::cout << j.dump() << "\n";
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

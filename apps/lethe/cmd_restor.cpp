// lethe restor: corrupt a model's facts about some people, unlearn the corruption, measure what
// comes back (the RESTOR protocol; docs/probes.md "RESTOR").
#include <iostream>

#include "commands.h"
#include "lethe/run/restor.h"

namespace lethe::cli {

void add_restor(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "restor", "Corrupt the forget people's facts, unlearn the corruption with a method, measure what comes back");
  struct Opts {
    run::RestorOptions r;
    bool no_progress = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->r.model, "the clean target: a model folder with its tokenizer (required)");
  cmd->add_option("--data", o->r.data,
                  "TOFU-layout folder: FORGET.jsonl, FORGET_perturbed.jsonl (the wrong facts), retainNN.jsonl (required)");
  cmd->add_option("--out", o->r.out, "output folder (required; new or empty unless --force)");
  cmd->add_option("--forget-split", o->r.forget_split, "whose facts are corrupted: forgetNN (default forget10)");
  cmd->add_option("--method", o->r.method, "the unlearning method that undoes the corruption (default NPO)");
  cmd->add_option("--set", o->r.overrides,
                  "key=value for the unlearning run (method.beta=0.2, train.lr=1e-4), corrupt.KEY=value for the "
                  "corruption (corrupt.train.lr=1e-3); repeatable");
  cmd->add_option("--template", o->r.prompt_template, "prompt template for QA items (default plain)");
  cmd->add_option("--max-length", o->r.max_length, "tokens per sequence (default 512)")->check(CLI::PositiveNumber);
  cmd->add_option("--max-items", o->r.max_items, "only the first N forget items (default: all)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", o->r.batch_size, "evaluation batch size (default 8)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->r.seed, "training and bootstrap seed (default 0)");
  cmd->add_flag("--force", o->r.force, "replace an existing non-empty --out folder as a whole");
  cmd->add_flag("--no-progress", o->no_progress, "no progress bars");
  cmd->callback([o, &global] {
    run::RestorOptions r = o->r;
    r.progress = !o->no_progress;
    r.device = global.device;
    const nlohmann::json j = run::run_restor(r);
    for (const char* role : {"target", "corrupted", "restored"}) {
      const auto& m = j["models"][role];
      std::cout << role << ":";
      for (const auto& [k, v] : m["true"].items()) std::cout << "  " << k << " " << v["value"].get<double>();
      for (const auto& [k, v] : m["wrong"].items()) std::cout << "  wrong " << k << " " << v["value"].get<double>();
      std::cout << "\n";
    }
    for (const char* what : {"corruption", "restoration", "removal"}) {
      std::cout << what << ":";
      for (const auto& [k, v] : j[what].items()) {
        std::cout << "  " << k << " " << (v.is_null() ? std::string("-") : std::to_string(v.get<double>()));
      }
      std::cout << "\n";
    }
    std::cout << "restor " << (r.out / "RESTOR.json").string() << "\n";
  });
}

}  // namespace lethe::cli

// lethe finetune / lethe unlearn: runs from YAML configs with key.sub=value overrides.
#include <cmath>
#include <iostream>

#include "commands.h"
#include "lethe/core/error.h"
#include "lethe/run/run.h"
#include "lethe/unlearn/method.h"

namespace lethe::cli {
namespace {

void describe_methods() {
  for (const auto& m : unlearn::method_infos()) {
    std::cout << m.name << "\n    " << m.summary << "\n";
    for (const auto& p : m.params) {
      std::string def;
      if (const auto* d = std::get_if<double>(&p.default_value)) {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%g", *d);
        def = buf;
      } else if (const auto* s = std::get_if<std::string>(&p.default_value)) {
        def = *s;
      } else {
        for (const auto& e : std::get<std::vector<std::string>>(p.default_value)) def += (def.empty() ? "" : ", ") + e;
        def = "[" + def + "]";
      }
      const bool bounded = p.range.integer || std::isfinite(p.range.lo) || std::isfinite(p.range.hi);
      std::cout << "      " << p.name << " = " << def << "  (" << p.doc << (bounded ? "; " + p.range.str() : "")
                << ")\n";
    }
  }
}

void add_run(CLI::App& app, const GlobalOptions& global, const char* name, const char* help, run::RunKind kind) {
  auto* cmd = app.add_subcommand(name, help);
  struct Opts {
    std::string config;
    std::vector<std::string> overrides;
    bool methods = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("CONFIG", o->config, "YAML run config (see examples/configs/)");
  cmd->add_option("OVERRIDES", o->overrides, "key.sub=value settings that replace the config's");
  if (kind == run::RunKind::kUnlearn) {
    cmd->add_flag("--methods", o->methods, "List the unlearning methods and their parameters");
  }
  cmd->callback([o, kind, &global] {
    if (o->methods) {
      describe_methods();
      return;
    }
    LETHE_CHECK(!o->config.empty(), "give a CONFIG.yaml (see examples/configs/)");
    // The global --device is the config's `device` key, given last (it wins over the file's).
    std::vector<std::string> overrides = o->overrides;
    if (global.device_given) overrides.push_back("device=" + global.device);
    const run::RunConfig cfg = run::load_run_config(o->config, overrides, kind);
    const run::RunSummary s = run::run(cfg);
    std::cout << "steps " << s.result.steps;
    if (s.result.resumed_from > 0) std::cout << " (resumed from " << s.result.resumed_from << ")";
    std::cout << "\n";
    for (const auto& [k, v] : s.result.last_terms) std::cout << k << " " << v << "\n";
    for (const auto& [k, v] : s.final_eval) std::cout << k << " " << v << "\n";
    if (!s.model_dir.empty()) std::cout << "model " << s.model_dir.string() << "\n";
    if (!s.adapter_dir.empty()) std::cout << "adapter " << s.adapter_dir.string() << "\n";
    if (!s.eval_summary.empty()) std::cout << "eval " << s.eval_summary.string() << "\n";
    if (s.result.stopped) {
      std::cout << (s.result.stopped_by == "rule" ? "stopped by the stop rule: " : "stopped by the collapse guard: ")
                << s.result.stop_reason << "\n";
    }
  });
}

}  // namespace

void add_train(CLI::App& app, const GlobalOptions& global) {
  add_run(app, global, "finetune", "Fine-tune a model from a YAML config", run::RunKind::kFinetune);
  add_run(app, global, "unlearn", "Unlearn a forget set from a YAML config", run::RunKind::kUnlearn);
}

}  // namespace lethe::cli

// lethe demo: a fictitious world, its target and oracle trained from scratch, one split
// unlearned and proven, in one report (docs/demo.md).
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "lethe/world/demo.h"

namespace lethe::cli {

void add_demo(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("demo", "Train a target and its oracle on a fictitious world, unlearn, evaluate, report");
  auto o = std::make_shared<world::DemoOptions>();
  cmd->add_option("--out", o->out, "output folder (default lethe-demo; trained models are cached in OUT/cache)");
  cmd->add_option("--method", o->method, std::string("unlearning method (default ") + world::demo_default_method() + ")");
  cmd->add_option("--forget", o->forget_split, "forget01, forget05 or forget10 (default)");
  cmd->add_option("--seed", o->seed, "world and training seed (default 0)");
  cmd->add_option("--scale", o->scale, "default, or tiny (a miniature run in seconds, for tests)");
  cmd->add_flag("!--no-progress", o->progress, "no progress bars");
  cmd->add_flag("!--no-audit", o->audit, "skip the memorization audit of target, oracle and unlearned model (docs/audits.md)");
  cmd->add_flag("!--no-probes", o->probes,
                "skip the removal-vs-suppression probes of the unlearned model (quantize, relearn, in_context, "
                "representation, parametric, linear)");
  cmd->add_flag("--insertion-study", o->insertion_study,
                "also run the insertion study: secrets, biographies and passphrases inserted 1-64 times, three "
                "perturbed models (insertions spread over training, in its first epoch, in its last) audited beside "
                "the target against duplication (OUT/study/; three more trainings)");
  cmd->add_flag("--stop-at-holdout", o->stop_at_holdout,
                "unlearn until the forget answers' mean NLL reaches the holdout people's (train.stop_rule "
                "holdout_nll, checked every step, within a budget of 4x the demo's epochs): the oracle-free "
                "stopping rule");
  cmd->add_option("--data", o->data,
                  "a TOFU-layout folder to run on instead of a generated world (TOFU: ../shared/data/tofu; docs/demo.md)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--authors", o->authors,
                  "with --data: use this many of its authors (the forget split keeps its share, at least one; "
                  "default: all)");
  cmd->callback([o, &global] {
    world::DemoOptions opt = *o;
    opt.device = global.device;
    const world::DemoResult r = world::run_demo(opt);
    auto num = [](const nlohmann::json& v) {
      char b[32];
      std::snprintf(b, sizeof(b), "%.3g", v.get<double>());
      return std::string(b);
    };
    auto with_ci = [&](const nlohmann::json& c, const char* value, const char* interval) {
      std::string t = num(c[value]);
      if (c.contains(interval)) t += " [" + num(c[interval][0]) + ", " + num(c[interval][1]) + "]";
      return t;
    };
    for (const auto& c : r.summary["checks"]) {
      std::cout << (c["pass"].get<bool>() ? "pass  " : "FAIL  ") << c["check"].get<std::string>() << ": "
                << with_ci(c, "value", "ci");
      if (c.contains("ratio_to_target")) {
        std::cout << " vs the target's " << with_ci(c, "target_value", "target_ci") << " (" << num(c["ratio_to_target"])
                  << "x)";
      }
      std::cout << "\n";
    }
    for (const char* m : {"target", "oracle", "unlearned"}) {
      const auto& s = r.summary["models"][m];
      std::cout << m;
      for (const char* k : {"forget_quality", "model_utility", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "privleak"}) {
        if (s.contains(k)) std::cout << "  " << k << " " << s[k].get<double>();
      }
      std::cout << "\n";
    }
    if (r.summary.contains("probe")) {
      for (const auto& [m, v] : r.summary["probe"]["verdicts"].items()) {
        std::cout << "probe verdict " << m << ": " << v["verdict"].get<std::string>() << " ("
                  << v["reason"].get<std::string>() << ")\n";
      }
    }
    if (r.summary.contains("insertion_study")) {
      std::cout << "insertion study " << r.summary["insertion_study"]["path"].get<std::string>() << "\n";
    }
    std::cout << "time " << r.seconds << " s" << (r.trained ? "" : " (target and oracle from the cache)") << "\n"
              << "summary " << (opt.out / "SUMMARY.json").string() << "\nreport " << r.report.string() << "\n";
  });
}

}  // namespace lethe::cli

// lethe eval: run the TOFU or MUSE suite on a model (or summarise an existing per-item log).
#include <iostream>
#include <sstream>

#include "commands.h"
#include "lethe/core/error.h"
#include "lethe/eval/evaluate.h"
#include "lethe/eval/metric.h"

namespace lethe::cli {
namespace {

void list_metrics() {
  for (const eval::Metric* m : eval::all_metrics()) {
    std::string suites;
    for (const auto& s : eval::metric_suites(m->name)) suites += (suites.empty() ? "" : ",") + s;
    std::cout << m->name << "  [" << suites << "]" << (m->needs_reference() ? " needs --reference" : "")
              << (m->opt_in ? " opt-in" : "") << "\n    " << m->description << "\n";
  }
}

}  // namespace

void add_eval(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("eval", "Evaluate a model with the TOFU or MUSE suite");
  struct Opts {
    eval::EvalOptions e;
    std::string metrics, splits, tmpl = "plain";
    bool list = false, no_report = false, no_progress = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--suite", o->e.suite, "tofu, muse or mc (multiple choice)")->check(CLI::IsMember(eval::suite_names()));
  cmd->add_option("--model", o->e.model, "Hugging Face model folder to evaluate");
  cmd->add_option("--data", o->e.data, "the suite's data folder (TOFU layout: forget10_perturbed.jsonl, ...; MUSE layout: knowmem/, verbmem/, privleak/)");
  cmd->add_option("--out", o->e.out, "output folder for EVAL.json, SUMMARY.json and report.html (required; new or empty unless --force)");
  cmd->add_option("--reference", o->e.reference,
                  "the retain-only model for forget_quality / privleak: a model folder, a lethe EVAL.json, or (tofu) TOFU's eval_log_aggregated.json");
  cmd->add_option("--from-logs", o->e.from_logs, "summarise this EVAL.json or TOFU legacy log instead of running a model");
  cmd->add_option("--forget-split", o->e.forget_split, "tofu: forget01, forget05 or forget10 (default); mc: the forget set's name, read from NAME_mc.jsonl");
  cmd->add_option("--metrics", o->metrics, "comma-separated metric names (default: the suite's; see --list-metrics)");
  cmd->add_option("--splits", o->splits,
                  "comma-separated splits to evaluate, by their EVAL.json names (default: all of the suite's; "
                  "tofu: forget, retain, ra, wf, holdout)");
  cmd->add_option("--template", o->tmpl,
                  "prompt template for QA items: plain (default), llama2-chat, llama3-chat, chat (the model folder's own chat "
                  "template), auto (chat when the folder has one, else plain)");
  cmd->add_option("--tokenizer", o->e.tokenizer, "tokenizer (default: the model folder's)");
  cmd->add_option("--batch-size", o->e.batch_size, "sequences per scoring / generation batch (default 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-new-tokens", o->e.max_new_tokens, "generation length (default: tofu 200, verbmem 128, knowmem 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", o->e.max_length,
                  "tokens per scored sequence (default: tofu 512, muse 2048; never past the model's positions)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-items", o->e.max_items, "evaluate only the first N items of each split (default: all)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--min-k", o->e.min_k, "k of the Min-K% attacks, in (0, 1] (default 0.4)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->e.seed, "bootstrap seed (default 0)");
  cmd->add_option("--dtype", o->e.dtype,
                  "dtype the model (and a --reference model) is held in: float32 (default), bfloat16 or float16 "
                  "(half the memory, computed in float32)")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}));
  cmd->add_flag("--force", o->e.force, "replace an existing non-empty --out folder as a whole");
  cmd->add_flag("--no-report", o->no_report, "do not write report.html");
  cmd->add_flag("--no-progress", o->no_progress, "no progress bars");
  cmd->add_flag("--list-metrics", o->list, "list the metrics and exit");
  cmd->callback([o, &global] {
    if (o->list) {
      list_metrics();
      return;
    }
    eval::EvalOptions e = o->e;
    e.metrics = split_list(o->metrics);
    e.splits = split_list(o->splits);
    e.prompt_template = e.model.empty() ? text::PromptTemplate::named(o->tmpl)
                                        : text::PromptTemplate::resolve(o->tmpl, e.tokenizer.empty() ? e.model : e.tokenizer);
    e.report = !o->no_report;
    e.progress = !o->no_progress;
    e.device = global.device;
    if (e.from_logs.empty()) {
      LETHE_CHECK(!e.model.empty(), "give --model DIR (or --from-logs LOG)");
      LETHE_CHECK(!e.data.empty(), "give --data DIR (the ", e.suite, " data folder)");
    }
    const eval::EvalOutputs out = eval::run_eval(e);
    for (const auto& [k, v] : out.summary.items()) {
      if (!v.is_number() || k == "format_version") continue;
      std::cout << k << " " << v.get<double>();
      if (out.summary["ci"].contains(k)) {
        std::cout << "  [" << out.summary["ci"][k][0].get<double>() << ", " << out.summary["ci"][k][1].get<double>() << "]";
      }
      std::cout << "\n";
    }
    for (const auto& [k, v] : out.summary["omitted"].items()) std::cout << k << " not computed: " << v.get<std::string>() << "\n";
    if (!out.eval_path.empty()) std::cout << "eval " << out.eval_path.string() << "\n";
    std::cout << "summary " << out.summary_path.string() << "\n";
    if (!out.report_path.empty()) std::cout << "report " << out.report_path.string() << "\n";
  });
}

}  // namespace lethe::cli

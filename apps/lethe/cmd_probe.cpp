// lethe probe: did unlearning remove the forget set or only hide it? (docs/probes.md)
#include <iomanip>
#include <iostream>

#include "commands.h"
#include "lethe/core/error.h"
#include "lethe/eval/metric.h"
#include "lethe/probe/probe.h"
#include "lethe/text/template.h"

namespace lethe::cli {
namespace {

void print_result(const probe::Json& r) {
  const auto keys = r["keys"].get<std::vector<std::string>>();
  for (const auto& [name, p] : r["probes"].items()) {
    if (!p.contains("comparison")) continue;
    if (p["comparison"].contains("accuracy")) {
      for (const auto& [role, layers] : p["comparison"]["accuracy"].items()) {
        std::cout << name << " accuracy " << role << " per layer:";
        for (const auto& v : layers) std::cout << " " << std::fixed << std::setprecision(3) << v.get<double>();
        std::cout << std::defaultfloat << " (chance " << p["comparison"]["chance"].get<double>() << ")\n";
      }
    }
    if (p["comparison"].contains("traces")) {
      const probe::Json& t = p["comparison"]["traces"];
      std::cout << name << " traces: kept on the target's " << p["comparison"]["vectors"].get<std::int64_t>()
                << " most aligned units:";
      for (const auto& [role, v] : t["kept"].items()) {
        std::cout << " " << role << " " << (v.is_null() ? std::string("-") : std::to_string(v.get<double>()));
      }
      std::cout << "\n";
    }
    if (!p["comparison"].contains("cka")) continue;
    for (const auto& [pair, layers] : p["comparison"]["cka"].items()) {
      std::cout << name << " CKA " << pair << " per layer:";
      for (const auto& v : layers) {
        if (v.is_null()) {
          std::cout << " -";
        } else {
          std::cout << " " << std::fixed << std::setprecision(3) << v.get<double>();
        }
      }
      std::cout << std::defaultfloat << "\n";
    }
  }
  for (const auto& [role, m] : r["models"].items()) {
    std::cout << role << ": " << m["verdict"].get<std::string>() << " (" << m["verdict_reason"].get<std::string>()
              << ")\n";
    std::cout << "  unattacked";
    for (const auto& k : keys) std::cout << "  " << k << " " << m["baseline"][k]["value"].get<double>();
    std::cout << "\n";
    const probe::Json measured = m.value("measured", probe::Json::object());
    for (const auto& [name, me] : measured.items()) {
      std::cout << "  " << name << " plain";
      for (const auto& [k, v] : me["baseline"].items()) std::cout << "  " << k << " " << v["value"].get<double>();
      std::cout << "\n";
      for (const auto& a : me["attacks"]) {
        std::cout << "  " << name << " " << a["setting"].get<std::string>();
        for (const auto& [k, v] : a["metrics"].items()) std::cout << "  " << k << " " << v["value"].get<double>();
        std::cout << "\n";
      }
    }
    for (const auto& [name, attacks] : m["probes"].items()) {
      for (const auto& a : attacks) {
        std::cout << "  " << name << " " << a["setting"].get<std::string>();
        for (const auto& k : keys) {
          std::cout << "  " << k << " " << a["metrics"][k]["value"].get<double>();
          if (a.contains("recovery") && !a["recovery"][k].is_null()) {
            std::cout << " (recovery " << a["recovery"][k].get<double>() << ")";
          }
        }
        std::cout << "\n";
      }
    }
  }
}

}  // namespace

void add_probe(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "probe", "Attack an unlearned model (quantization, ...) and tell removal from suppression against the oracle");
  struct Opts {
    probe::ProbeOptions p;
    std::string probes = "quantize,relearn", quantize, relearn_steps, in_context, metrics, tmpl = "plain";
    bool list = false, no_progress = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->p.model, "the unlearned model folder (the candidate)");
  cmd->add_option("--reference", o->p.reference,
                  "the oracle: a model folder retrained without the forget set (required; a removal must stay at its level)");
  cmd->add_option("--target", o->p.target, "the model before unlearning (optional: gives each attack's recovery)");
  cmd->add_option("--data", o->p.eval.data, "the suite's data folder (TOFU or MUSE layout, as for lethe eval)");
  cmd->add_option("--out", o->p.out, "output folder for PROBE.json (required; new or empty unless --force)");
  cmd->add_option("--suite", o->p.eval.suite, "tofu (default), muse or mc")->check(CLI::IsMember(eval::suite_names()));
  cmd->add_option("--forget-split", o->p.eval.forget_split, "tofu: forget01, forget05 or forget10 (default)");
  cmd->add_option("--probes", o->probes, "comma-separated probes to run (default: quantize,relearn; robustness: all; see --list)");
  cmd->add_option("--quantize", o->quantize,
                  "quantize: comma-separated forms int<bits>[-g<group>][-asym] (default: int8,int4-g128,int4-g32)");
  cmd->add_option("--relearn-steps", o->relearn_steps,
                  "relearn: comma-separated step counts, each a fine-tuning of its own (default 20)");
  cmd->add_option("--relearn-lr", o->p.relearn_lr, "relearn: AdamW learning rate, constant (default 1e-5)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--relearn-batch", o->p.relearn_batch, "relearn: examples per step (default 4)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--relearn-lora", o->p.relearn_lora_rank,
                  "relearn: train a LoRA adapter of this rank (alpha 2 x rank, every attention and MLP linear) instead "
                  "of every weight (default: full fine-tuning)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--in-context", o->in_context,
                  "in_context: comma-separated prompt attacks (default: context,paraphrase,many-shot,sampled)");
  cmd->add_option("--context-facts", o->p.context_facts,
                  "in_context context: the person's other answers put before a held-back question (default 4)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--shots", o->p.shots, "in_context many-shot: benign QA pairs before the question (default 4)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--samples", o->p.samples, "in_context sampled: k of leak@k, at temperature 1, top-p 0.95 (default 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--leak-threshold", o->p.leak_threshold,
                  "in_context: a leak is an answer's ROUGE-L recall at or above this (default 0.5)")
      ->check(CLI::Range(1e-9, 1.0));
  cmd->add_option("--items-per-person", o->p.items_per_person,
                  "in_context context: QA items per person, consecutive (default: world.json's, else TOFU's 20)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--linear-attribute", o->p.linear_attribute,
                  "linear: the bios.jsonl field read off the hidden state at each name (default birth_country)");
  cmd->add_option("--trace-vectors", o->p.trace_vectors,
                  "parametric: the target's MLP value vectors followed, its K most aligned with the forget answers "
                  "(default 20)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--metrics", o->metrics,
                  "metrics re-measured after each attack (default: tofu probability,rouge; muse verbmem_rouge,knowmem_rouge)");
  cmd->add_option("--template", o->tmpl, "prompt template for QA items (as for lethe eval; default plain)");
  cmd->add_option("--tokenizer", o->p.eval.tokenizer, "tokenizer (default: the --model folder's)");
  cmd->add_option("--batch-size", o->p.eval.batch_size, "sequences per scoring / generation batch (default 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-new-tokens", o->p.eval.max_new_tokens, "generation length (default: the suite's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", o->p.eval.max_length, "tokens per scored sequence (default: the suite's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-items", o->p.eval.max_items, "only the first N items of each forget split (default: all)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->p.eval.seed, "bootstrap seed (default 0)");
  cmd->add_flag("--force", o->p.force, "replace an existing non-empty --out folder as a whole");
  cmd->add_flag("--no-progress", o->no_progress, "no progress bars");
  cmd->add_flag("--list", o->list, "list the probes and exit");
  cmd->callback([o, &global] {
    if (o->list) {
      for (const probe::Probe* p : probe::all_probes()) std::cout << p->name << "  " << p->description << "\n";
      std::cout << probe::kRobustness << "  every probe above that the data can serve (the robustness suite)\n";
      return;
    }
    probe::ProbeOptions p = o->p;
    p.probes = split_list(o->probes);
    for (const auto& q : split_list(o->quantize)) p.quantizations.push_back(model::parse_quant_spec(q));
    p.eval.metrics = split_list(o->metrics);
    if (!o->in_context.empty()) p.in_context = split_list(o->in_context);
    if (!o->relearn_steps.empty()) {
      p.relearn_steps.clear();
      for (const auto& k : split_list(o->relearn_steps)) {
        std::size_t used = 0;
        long long v = 0;
        try {
          v = std::stoll(k, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        LETHE_CHECK(used == k.size() && v > 0, "--relearn-steps: '", k, "' is not a positive step count");
        p.relearn_steps.push_back(v);
      }
    }
    LETHE_CHECK(!p.model.empty(), "give --model DIR (the unlearned model)");
    p.eval.prompt_template = text::PromptTemplate::resolve(o->tmpl, p.eval.tokenizer.empty() ? p.model : p.eval.tokenizer);
    p.eval.progress = !o->no_progress;
    p.eval.device = global.device;
    const probe::Json r = probe::run_probes(p);
    print_result(r);
    std::cout << "probe " << (p.out / "PROBE.json").string() << "\n";
  });
}

}  // namespace lethe::cli

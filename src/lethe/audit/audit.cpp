// The audits' registry, their shared arithmetic and the run over the model, target and oracle
// (include/lethe/audit/audit.h, docs/audits.md).
#include "lethe/audit/audit.h"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "audit/audits.h"
#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/core/progress.h"
#include "lethe/core/runtime.h"
#include "lethe/core/version.h"
#include "lethe/data/records.h"
#include "lethe/eval/report.h"
#include "lethe/eval/stats.h"
#include "lethe/model/load.h"

namespace lethe::audit {
namespace fs = std::filesystem;

const std::vector<const Audit*>& all_audits() {
  static const std::vector<const Audit*> audits = {&exposure_audit(), &extract_audit(), &forcing_audit(),
                                                   &ghost_audit()};
  return audits;
}

const Audit& find_audit(const std::string& name) {
  std::string known;
  for (const Audit* a : all_audits()) {
    if (a->name == name) return *a;
    known += (known.empty() ? "" : ", ") + a->name;
  }
  throw Error("unknown audit '" + name + "' (known: " + known + ")");
}

namespace {

const fs::path& input_of(const AuditOptions& o, const std::string& option) {
  if (option == "--canaries") return o.canaries;
  if (option == "--ghost") return o.ghost;
  if (option == "--corpus") return o.corpus;
  throw Error("audit: no input option " + option);
}

void check_file(const fs::path& p, const std::string& option) {
  LETHE_CHECK(fs::is_regular_file(p), option, " ", p.string(), ": no such file");
}

}  // namespace

std::vector<const Audit*> selected_audits(const AuditOptions& o) {
  std::vector<const Audit*> out;
  if (o.audits.empty()) {
    for (const Audit* a : all_audits()) {
      if (a->needs.empty() || !input_of(o, a->needs).empty()) out.push_back(a);
    }
  } else {
    for (const auto& name : o.audits) {
      const Audit& a = find_audit(name);
      if (std::find(out.begin(), out.end(), &a) == out.end()) out.push_back(&a);
    }
  }
  for (const Audit* a : out) {
    if (a->needs.empty()) continue;
    const fs::path& p = input_of(o, a->needs);
    LETHE_CHECK(!p.empty(), "audit ", a->name, " needs ", a->needs, " FILE");
    check_file(p, a->needs);
  }
  // Parse what can be parsed now, so a bad line fails before any model is loaded.
  if (!o.canaries.empty()) read_canaries(o.canaries);
  if (!o.ghost.empty()) read_ghost_sentences(o.ghost);
  if (!o.prefixes.empty()) {
    check_file(o.prefixes, "--prefixes");
    LETHE_CHECK(!data::read_texts(o.prefixes).empty(), "--prefixes ", o.prefixes.string(), ": no prefixes");
  }
  if (!o.reference.empty()) LETHE_CHECK(fs::is_directory(o.reference), "--reference ", o.reference.string(), ": no such model folder");
  return out;
}

void for_each_record(const fs::path& jsonl, const std::function<void(const std::string&, const Json&)>& record) {
  std::istringstream in(read_file(jsonl));
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = jsonl.string() + ": line " + std::to_string(n);
    record(where, json_named(where, [&] { return Json::parse(line); }));
  }
}

std::int64_t repetitions_of(const Json& r, const std::string& where) {
  if (!r.contains("repetitions")) return 0;
  LETHE_CHECK(r["repetitions"].is_number_integer() && r["repetitions"].get<std::int64_t>() >= 0, where,
              ": \"repetitions\" must be a whole number >= 0 (how often it was put in the training text)");
  return r["repetitions"];
}

Json by_repetitions_json(const std::map<std::int64_t, std::vector<double>>& values, std::uint64_t seed) {
  Json by = Json::object();
  for (const auto& [r, v] : values) by[std::to_string(r)] = mean_with_ci(v, seed);
  return by;
}

Json mean_with_ci(const std::vector<double>& values, std::uint64_t seed) {
  if (values.empty()) return {{"value", nullptr}, {"ci", nullptr}, {"n", 0}};
  const eval::Interval ci = eval::bootstrap_mean_ci(values, seed);
  return {{"value", eval::mean(values)}, {"ci", {ci.lo, ci.hi}}, {"n", values.size()}};
}

Json run_audit(const AuditOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  LETHE_CHECK(!opt.model.empty(), "audit: give --model DIR (the model to audit)");
  LETHE_CHECK(!opt.out.empty(), "audit: give --out DIR (AUDIT.json goes there)");
  struct Role {
    std::string name;
    fs::path path;
    std::string option;  // where it was given, for errors and AUDIT.json's inputs
  };
  std::vector<Role> roles;
  if (!opt.target.empty()) roles.push_back({"target", opt.target, "--target"});
  if (!opt.oracle.empty()) roles.push_back({"oracle", opt.oracle, "--oracle"});
  // Names appear in AUDIT.json, the report and file names of consumers: kept plain.
  auto check_name = [](const std::string& name, const std::string& option) {
    LETHE_CHECK(!name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string::npos,
                "audit: ", option, ": the name '", name, "' must be lowercase letters, digits, - or _");
  };
  for (const auto& [name, path] : opt.compare) {
    check_name(name, "--compare NAME=DIR");
    roles.push_back({name, path, "--compare " + name});
  }
  check_name(opt.model_role, "--model-name");
  roles.push_back({opt.model_role, opt.model, "--model"});
  for (std::size_t i = 0; i < roles.size(); ++i) {
    for (std::size_t k = 0; k < i; ++k) {
      LETHE_CHECK(roles[i].name != roles[k].name, "audit: two models are called '", roles[i].name,
                  "' (--compare names must differ from each other and from target, oracle and ", opt.model_role, ")");
    }
  }
  std::vector<NamedPath> inputs;
  for (const Role& r : roles) {
    LETHE_CHECK(fs::exists(r.path), "audit: ", r.option, " ", r.path.string(), ": no such model folder");
    inputs.emplace_back(r.option, r.path);
  }
  for (const auto& [name, p] : std::vector<NamedPath>{{"--canaries", opt.canaries}, {"--ghost", opt.ghost},
                                                       {"--corpus", opt.corpus}, {"--reference", opt.reference},
                                                       {"--prefixes", opt.prefixes}, {"--tokenizer", opt.tokenizer}}) {
    if (!p.empty()) inputs.emplace_back(name, p);
  }
  const std::vector<const Audit*> audits = selected_audits(opt);
  check_output_apart(opt.out, "--out", inputs);
  StagedFolder staged(opt.out, opt.force, "--out");  // refuses a non-empty --out before any work

  Json out = {{"format", "lethe.audit"}, {"format_version", 1}, {"lethe_version", version()}, {"audits", Json::array()},
              {"inputs", Json::object()}, {"models", Json::array()}};
  for (const Audit* a : audits) out["audits"].push_back(a->name);
  for (const auto& [name, p] : inputs) {
    std::string key = name.substr(2);  // "--compare spread" -> "compare.spread"
    std::replace(key.begin(), key.end(), ' ', '.');
    out["inputs"][key] = p.string();
  }
  out["model_role"] = opt.model_role;
  std::vector<AuditRun> runs;  // each audit's inputs read once, for every model
  for (const Audit* a : audits) runs.push_back(a->prepare(opt));
  model::LoadOptions lo;
  lo.device = parse_device(opt.device);
  for (const Role& r : roles) {
    log_info("audit: the ", r.name, " (", r.path.string(), ")");
    auto m = model::load_model(r.path, lo);
    const auto tok = text::load_tokenizer(opt.tokenizer.empty() ? r.path : opt.tokenizer);
    Json mj = {{"role", r.name}, {"path", r.path.string()}, {"audits", Json::array()}, {"seconds", Json::object()}};
    for (std::size_t k = 0; k < audits.size(); ++k) {
      const Audit* a = audits[k];
      const auto ta = std::chrono::steady_clock::now();
      log_info("audit: ", a->name, " on the ", r.name);
      Json aj = runs[k](*m, *tok);
      aj["audit"] = a->name;
      mj["audits"].push_back(std::move(aj));
      mj["seconds"][a->name] = seconds_since(ta);
    }
    out["models"].push_back(std::move(mj));
  }
  out["seconds"] = seconds_since(t0);
  write_file_atomic(staged.path() / "AUDIT.json", out.dump(2) + "\n");
  eval::ReportInput page;
  page.title = "lethe audit: " + opt.model.string();
  page.lead_html = audit_report_html(out);
  page.notes = {"Audits " + [&] {
    std::string s;
    for (const Audit* a : audits) s += (s.empty() ? "" : ", ") + a->name;
    return s;
  }() + " of " + opt.model.string() + ". The numbers are in AUDIT.json."};
  write_file_atomic(staged.path() / "audit.html", eval::render_report(page, nullptr));
  staged.commit();
  return out;
}

}  // namespace lethe::audit

// report.html: one self-contained page (inline CSS and SVG, no scripts, no network) that shows
// a person what an evaluation found — the summary table (one column per model, with 95% CIs),
// truth-ratio histograms against the reference, ROC curves of every membership attack, and
// per-item tables with the generations. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "lethe/eval/summary.h"

namespace lethe::eval {

struct ReportModel {
  std::string name;  // column title: "target", "oracle", "unlearned", ...
  Json summary;      // SUMMARY.json
  Json eval;         // EVAL.json (may be null: no per-item sections)
};

struct ReportInput {
  std::string title;
  std::vector<ReportModel> models;
  std::vector<std::string> notes;          // paragraphs shown under the title (plain text)
  std::vector<std::pair<std::string, std::string>> extra_sections;  // (heading, trusted HTML)
};

std::string render_report(const ReportInput& in, const ReferenceData* reference);

// HTML-escapes text (&, <, >, ", ').
std::string html_escape(std::string_view s);

}  // namespace lethe::eval

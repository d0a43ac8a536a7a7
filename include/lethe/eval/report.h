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
  std::string lead_html;  // trusted HTML right under the title: what a reader needs first (a verdict)
};

std::string render_report(const ReportInput& in, const ReferenceData* reference);

// A line plot (inline SVG) of several series over a shared x axis, legend below the axes so
// long names are never clipped. `log2_x`: the x axis in powers of two (bits, steps).
struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in the given order
  bool dashed = false;
  int color = -1;  // index into the report's palette; -1: the series' own index
};
struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  bool log2_x = false;
  std::vector<std::string> x_ticks;  // names of x = 0, 1, ... (a categorical axis); empty: numeric
};
std::string line_plot_svg(const LinePlot& plot);
// Figures side by side, wrapping: the report's grid.
std::string figure_grid(const std::vector<std::string>& figures);

// HTML-escapes text (&, <, >, ", ').
std::string html_escape(std::string_view s);

}  // namespace lethe::eval

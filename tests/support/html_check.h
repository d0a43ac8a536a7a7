// A strict checker for the HTML lethe writes (report.html): every element closed in order,
// attributes quoted, entities valid, and nothing that loads from elsewhere (no scripts, links,
// or src/href to another resource). Independent of the writer: it knows nothing of reports.
#pragma once

#include <string>

namespace lethe::test {

// Empty when `html` is well-formed and self-contained; otherwise what is wrong and where.
std::string check_html(const std::string& html);

}  // namespace lethe::test

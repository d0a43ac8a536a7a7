// The audits' registry entries (one file each under audit/, listed once in audit.cpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lethe/audit/audit.h"

namespace lethe::audit {

// Calls `record(where, json)` for every non-blank line of a JSONL audit input, `where` naming
// the file and line for errors (bad JSON is one already).
void for_each_record(const std::filesystem::path& jsonl, const std::function<void(const std::string&, const Json&)>& record);
// A record's optional "repetitions" (how often it was put in the training text): 0 when absent.
std::int64_t repetitions_of(const Json& record, const std::string& where);
// {"<repetitions>": mean_with_ci(values)} for every repetition count: what an audit reports
// against duplication (Hubble's plots).
Json by_repetitions_json(const std::map<std::int64_t, std::vector<double>>& values, std::uint64_t seed);

const Audit& exposure_audit();  // audit/exposure_audit.cpp
const Audit& extract_audit();   // audit/extract_audit.cpp
const Audit& forcing_audit();   // audit/forcing_audit.cpp
const Audit& ghost_audit();     // audit/ghost_audit.cpp

}  // namespace lethe::audit

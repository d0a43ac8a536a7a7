// The probes' registry entries (one file each under probe/, listed once in probe.cpp).
#pragma once

#include "lethe/data/records.h"
#include "lethe/probe/probe.h"

namespace lethe::probe {

// The forget split's QA records (the suite's forget view), the first --max-items of them: what
// relearn fine-tunes on and representation takes prompts from. `probe` names the caller in errors.
std::vector<data::QARecord> forget_records(const eval::EvalOptions& opt, const char* probe);

const Probe& quantize_probe();  // probe/quantize.cpp
const Probe& relearn_probe();   // probe/relearn.cpp
const Probe& in_context_probe();      // probe/in_context.cpp
const Probe& representation_probe();  // probe/representation.cpp

}  // namespace lethe::probe

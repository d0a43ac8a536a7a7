// The probes' registry entries (one file each under probe/, listed once in probe.cpp).
#pragma once

#include "lethe/data/records.h"
#include "lethe/probe/probe.h"

namespace lethe::probe {

// Each layer's hidden state (HF hidden_states: [0] the embeddings, ..., the final norm's output)
// at the last token of every prompt, as L + 1 (n, C) double matrices; batches right-padded.
Record hidden_states_at_last(model::CausalLM& model, const text::Tokenizer& tok,
                             const std::vector<std::vector<std::int64_t>>& prompts, std::int64_t batch_size);

// The forget split's QA records (the suite's forget view), the first --max-items of them: what
// relearn fine-tunes on and representation takes prompts from. `probe` names the caller in errors.
std::vector<data::QARecord> forget_records(const eval::EvalOptions& opt, const char* probe);

// The length QA items are encoded to for a probe's prompts: --max-length (512 unset), within the
// model's positions.
std::size_t encoded_length(const eval::EvalOptions& opt, const model::CausalLM& model);

const Probe& quantize_probe();  // probe/quantize.cpp
const Probe& relearn_probe();   // probe/relearn.cpp
const Probe& in_context_probe();      // probe/in_context.cpp
const Probe& linear_probe();          // probe/linear.cpp
const Probe& representation_probe();  // probe/representation.cpp
const Probe& parametric_probe();      // probe/parametric.cpp

}  // namespace lethe::probe

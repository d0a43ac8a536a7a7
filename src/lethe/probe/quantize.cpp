// The quantization probe (docs/probes.md "quantize"): round-to-nearest weight quantization of
// every block linear, dequantized back (model/quantize.h), then the forget metrics again.
// 4-bit quantization brought back most of what unlearning had removed in Zhang et al. (ICLR 2025).
#include "lethe/model/load.h"
#include "lethe/model/quantize.h"
#include "lethe/core/log.h"
#include "probe/probes.h"

namespace lethe::probe {
namespace {

std::vector<Attack> quantize_attacks(const ProbeOptions& o, const text::Tokenizer&) {
  std::vector<model::QuantSpec> specs = o.quantizations;
  if (specs.empty()) specs = {{8, 0, true}, {4, 128, true}, {4, 32, true}};
  std::vector<Attack> out;
  for (const auto& spec : specs) {
    out.push_back({spec.name(), static_cast<double>(spec.bits), [spec](const model::CausalLM& m) {
                     auto copy = model::clone_model(m);
                     const auto s = model::quantize_linears(*copy, spec);
                     log_info("probe quantize ", spec.name(), ": ", s.tensors, " weights, ", s.parameters,
                              " parameters, relative rms error ", s.relative_rms_error);
                     return copy;
                   }});
  }
  return out;
}

}  // namespace

const Probe& quantize_probe() {
  static const Probe p{"quantize",
                       "round-to-nearest weight quantization of every block linear (int8 per channel, int4 per "
                       "group of 128 and 32 by default), dequantized to fp32",
                       "bits per weight", quantize_attacks};
  return p;
}

}  // namespace lethe::probe

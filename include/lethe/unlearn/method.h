// unlearn::Method: an unlearning method is a set of named loss terms computed from a forget
// batch, an optional retain batch, an optional alternate batch (the forget questions with
// refusal answers) and, when the method needs one, a frozen reference model (architecture.md §3).
//
// Methods are created by name from a string registry that uses OpenUnlearning's names, so
// configs read the same: GradAscent, GradDiff, NPO, SimNPO, DPO (IdkDPO), IdkNLL, RMU, UNDIAL,
// WGA, SatImp, CE-U, IHL. docs/methods.md gives each formula and its defaults.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "lethe/core/range.h"

#include "lethe/data/batch.h"
#include "lethe/model/causal_lm.h"
#include "lethe/train/objective.h"

namespace lethe::unlearn {

using ParamValue = std::variant<double, std::string, std::vector<std::string>>;
using Params = std::map<std::string, ParamValue>;

struct UnlearnBatch {
  data::Batch forget;
  data::Batch retain;     // empty (size 0) when the method needs none
  data::Batch alternate;  // forget questions answered with refusals; empty unless needed
};

// A method's loss terms are the trainer's (train/objective.h).
using train::LossTerms;
using train::label_logprobs_of;
using train::logits_of;
using train::nll_of;

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  virtual bool needs_reference() const { return false; }
  virtual bool needs_retain() const { return false; }
  virtual bool needs_alternate() const { return false; }
  // True when the loss reads hidden activations through hook observers (RMU), which gradient
  // checkpointing cannot follow.
  virtual bool observes_activations() const { return false; }
  // Regexes (full match) of the parameters to train; empty: the trainer's default (all, or
  // the LoRA adapters).
  virtual std::vector<std::string> trainable_parameters() const { return {}; }
  // `reference` is non-null exactly when needs_reference().
  virtual LossTerms loss(model::CausalLM& model, model::CausalLM* reference, const UnlearnBatch& batch) = 0;
};

struct ParamInfo {
  std::string name;
  ParamValue default_value;
  std::string doc;
  Range range = Range::any();  // numbers: the domain a given value must lie in
};

struct MethodInfo {
  std::string name;
  std::string summary;
  std::vector<ParamInfo> params;
};

// All registered methods, in documentation order.
const std::vector<MethodInfo>& method_infos();
// Creates a method; unknown names and parameters, and values of the wrong type, are errors that
// list what is accepted.
std::unique_ptr<Method> make_method(const std::string& name, const Params& params = {});

}  // namespace lethe::unlearn

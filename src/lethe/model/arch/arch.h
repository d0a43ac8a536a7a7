// The contract between the registry and an architecture family. Adding a family = one file that
// defines an ArchSpec + one line in registry.cpp + one golden case (docs/HOWTO-add-model.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "lethe/model/causal_lm.h"
#include "lethe/model/config.h"

namespace lethe::model {

struct ArchSpec {
  std::vector<std::string> model_types;  // HF model_type values this family serves
  // config.json (already known to have this model_type) -> ModelConfig. `where` names the file.
  ModelConfig (*parse)(const Json& config, const std::string& where);
  // Writes this family's HF keys for `config` into `out` (other keys are left alone).
  void (*write)(const ModelConfig& config, Json& out);
  std::shared_ptr<CausalLM> (*build)(const ModelConfig& config);
};

const ArchSpec& gpt2_arch();
const ArchSpec& llama_arch();
const ArchSpec& gpt_neox_arch();

// The one place that maps model_type to a family; errors list the supported types.
const ArchSpec& find_arch(const std::string& model_type, const std::string& where = "");

// Helpers every family's parser shares.
Activation parse_activation(const std::string& name, const std::string& where);
// bos/eos/pad ids (eos may be an int or a list, as in Llama 3).
void parse_special_ids(const Json& config, ModelConfig& out, const std::string& where);
void write_special_ids(const ModelConfig& config, Json& out);
// Rejects keys whose non-default value would change the computation in a way lethe does not
// implement, naming the key: `null_keys` must be absent or null, `false_keys` absent or false.
void reject_unsupported(const Json& config, const std::vector<const char*>& null_keys,
                        const std::vector<const char*>& false_keys, const std::string& where);

}  // namespace lethe::model

// lethe info: a model folder's architecture, size, dtypes and tensors, without loading weights.
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>

#include "commands.h"
#include "lethe/io/checkpoint.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"

namespace lethe::cli {

void add_info(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("info", "Describe a model folder (config and checkpoint)");
  struct Opts {
    std::string model;
    bool tensors = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "Hugging Face model folder")->required();
  cmd->add_flag("--tensors", o->tensors, "List every tensor with its dtype and shape");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] {
    model::check_model_folder(o->model);
    model::ModelConfig c = model::read_config(o->model);
    io::Checkpoint ck = io::Checkpoint::open(o->model);
    auto m = model::build_model(c);
    model::verify_checkpoint(*m, ck, o->model);  // the strict loader's checks, no data read

    std::map<std::string, std::int64_t> dtypes;
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& name : ck.names()) {
      const io::TensorInfo* t = ck.find(name);
      dtypes[std::string(io::dtype_name(t->dtype))] += t->numel();
      tensors.push_back({{"name", name},
                         {"dtype", std::string(io::dtype_name(t->dtype))},
                         {"shape", t->shape}});
    }
    std::string eos;
    for (auto id : c.eos_token_ids) eos += (eos.empty() ? "" : ",") + std::to_string(id);
    nlohmann::json j = {
        {"model_type", c.model_type},
        {"parameters", m->parameter_count()},
        {"vocab_size", c.vocab_size},
        {"hidden_size", c.hidden_size},
        {"layers", c.num_layers},
        {"heads", c.num_heads},
        {"kv_heads", c.num_kv_heads},
        {"head_dim", c.head_dim},
        {"intermediate_size", c.intermediate_size},
        {"max_positions", c.max_position_embeddings},
        {"positions", c.positions == model::PositionKind::kRotary ? "rotary" : "learned"},
        {"rotary_dim", c.rotary_dim},
        {"rope_theta", c.rope_theta},
        {"norm", c.norm == model::NormKind::kRmsNorm ? "rms_norm" : "layer_norm"},
        {"norm_eps", c.norm_eps},
        {"activation", model::activation_name(c.activation)},
        {"parallel_residual", c.parallel_residual},
        {"tied_embeddings", c.tie_word_embeddings},
        {"checkpoint_files", ck.files().size()},
        {"checkpoint_bytes", ck.total_bytes()},
        {"dtypes", dtypes}};
    std::string tok_line = "none (token ids only)";
    if (text::has_tokenizer(o->model)) {
      auto tok = text::load_tokenizer(o->model);
      const auto& s = tok->special();
      auto id = [](const std::optional<std::int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
      j["tokenizer"] = {{"kind", tok->kind()}, {"vocab_size", tok->vocab_size()}, {"bos", id(s.bos)},
                        {"eos", id(s.eos)}, {"pad", id(s.pad)}, {"unk", id(s.unk)}};
      tok_line = tok->kind() + ", " + std::to_string(tok->vocab_size()) + " tokens";
      if (!s.bos_token.empty()) tok_line += ", bos '" + s.bos_token + "'";
      if (!s.eos_token.empty()) tok_line += ", eos '" + s.eos_token + "'";
    }
    if (o->tensors) j["tensors"] = tensors;
    if (o->json) {
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::cout << "model_type     " << c.model_type << "\n"
              << "parameters     " << m->parameter_count() << "\n"
              << "layers         " << c.num_layers << " (hidden " << c.hidden_size << ", heads "
              << c.num_heads << ", kv heads " << c.num_kv_heads << ", head dim " << c.head_dim
              << ", MLP " << c.intermediate_size << ")\n"
              << "vocab          " << c.vocab_size << "\n"
              << "positions      "
              << (c.positions == model::PositionKind::kRotary
                      ? "rotary (" + std::to_string(c.rotary_dim) + " dims, theta " +
                            nlohmann::json(c.rope_theta).dump() + ")"
                      : "learned")
              << ", max " << c.max_position_embeddings << "\n"
              << "norm           "
              << (c.norm == model::NormKind::kRmsNorm ? "rms_norm" : "layer_norm") << " eps "
              << c.norm_eps << "; activation " << model::activation_name(c.activation)
              << (c.parallel_residual ? "; parallel residual" : "") << "\n"
              << "embeddings     " << (c.tie_word_embeddings ? "tied" : "untied") << "\n"
              << "special ids    bos "
              << (c.bos_token_id ? std::to_string(*c.bos_token_id) : "-") << ", eos "
              << (eos.empty() ? "-" : eos) << ", pad "
              << (c.pad_token_id ? std::to_string(*c.pad_token_id) : "-") << "\n"
              << "tokenizer      " << tok_line << "\n"
              << "checkpoint     " << ck.files().size() << " file(s), " << ck.total_bytes()
              << " bytes;";
    for (const auto& [d, n] : dtypes) std::cout << " " << d << " " << n;
    std::cout << "\n";
    if (o->tensors) {
      for (const auto& t : tensors) {
        std::cout << "  " << t["name"].get<std::string>() << "  " << t["dtype"].get<std::string>()
                  << " " << t["shape"].dump() << "\n";
      }
    }
  });
}

}  // namespace lethe::cli

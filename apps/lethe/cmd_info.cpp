// lethe info: a model folder's architecture, size, dtypes and tensors, without loading weights.
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>

#include "commands.h"
#include "lethe/io/checkpoint.h"
#include "lethe/model/load.h"
#include "lethe/text/chat_template.h"
#include "lethe/text/tokenizer.h"

namespace lethe::cli {

namespace fs = std::filesystem;

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
    auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    auto rope_json = [](const model::RopeScaling& r) {
      nlohmann::json j = {{"type", r.type}};
      if (r.type != "default") j["factor"] = r.factor;
      if (r.original_max_position_embeddings > 0) j["original_max_position_embeddings"] = r.original_max_position_embeddings;
      return j;
    };
    // What shapes the attention beyond plain causal softmax(q·k/√d): one line for people.
    std::string attention = "causal";
    if (c.sliding_window) {
      attention += ", sliding window " + std::to_string(*c.sliding_window) +
                   (c.window_on_even_layers ? " (even layers)"
                    : c.window_from_layer ? " (layers " + std::to_string(*c.window_from_layer) + " on)"
                                          : "");
    }
    if (c.attn_logit_softcap) attention += ", scores soft-capped at " + nlohmann::json(*c.attn_logit_softcap).dump();
    if (c.final_logit_softcap) attention += ", logits soft-capped at " + nlohmann::json(*c.final_logit_softcap).dump();
    if (c.clip_qkv) attention += ", q/k/v clipped at " + nlohmann::json(*c.clip_qkv).dump();
    const fs::path chat = text::chat_template_file(o->model);
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
        {"rope_scaling", rope_json(c.rope_scaling)},
        {"sliding_window", c.sliding_window ? nlohmann::json(*c.sliding_window) : nlohmann::json(nullptr)},
        {"sliding_window_layers", !c.sliding_window           ? "none"
                                  : c.window_on_even_layers ? "even"
                                  : c.window_from_layer     ? "from " + std::to_string(*c.window_from_layer)
                                                            : "all"},
        {"attn_logit_softcap", opt(c.attn_logit_softcap)},
        {"final_logit_softcap", opt(c.final_logit_softcap)},
        {"clip_qkv", opt(c.clip_qkv)},
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
    j["chat_template"] = chat.empty() ? nlohmann::json(nullptr) : nlohmann::json(chat.filename().string());
    if (!chat.empty()) (void)text::load_chat_template(o->model);  // parsed: outside the subset fails here
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
              << ", max " << c.max_position_embeddings
              << (c.rope_scaling.type == "default" ? std::string()
                                                   : "; rope_scaling " + c.rope_scaling.type + " x" +
                                                         nlohmann::json(c.rope_scaling.factor).dump())
              << "\n"
              << "attention      " << attention << "\n"
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
              << "chat template  " << (chat.empty() ? std::string("none") : chat.filename().string()) << "\n"
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

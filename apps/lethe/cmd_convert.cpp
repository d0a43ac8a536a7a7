// lethe convert: foreign checkpoint formats -> Hugging Face model folders.
#include <iostream>

#include "commands.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"

namespace lethe::cli {

void add_convert(CLI::App& app, const GlobalOptions&) {
  auto* cmd = app.add_subcommand("convert", "Convert a checkpoint to a Hugging Face folder");
  cmd->require_subcommand(1);
  auto* l2c = cmd->add_subcommand("llama2c", "llama2.c v0 checkpoint (.bin) -> HF Llama folder");
  struct Opts {
    std::string file, out, tokenizer, dtype = "float32";
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  l2c->add_option("FILE", o->file, "llama2.c checkpoint, e.g. stories260K.bin")
      ->required()
      ->check(CLI::ExistingFile);
  l2c->add_option("--out", o->out, "Output folder (created; an existing non-empty one needs --force)")->required();
  l2c->add_flag("--force", o->force, "Replace an existing --out folder as a whole");
  l2c->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer to carry: llama2.c tokenizer .bin (converted to tokenizer.json) or "
                  "SentencePiece .model (copied as tokenizer.model)")
      ->check(CLI::ExistingFile);
  l2c->add_option("--dtype", o->dtype, "Stored dtype: float32 (default), bfloat16, float16")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16"}));
  l2c->callback([o] {
    check_output_apart(o->out, "--out", {{"FILE", o->file}, {"--tokenizer", o->tokenizer}});
    StagedFolder out(o->out, o->force, "--out");  // refuses a non-empty folder before any work
    auto m = model::load_llama2c(o->file);
    const auto dtype = o->dtype == "bfloat16" ? c10::kBFloat16
                       : o->dtype == "float16" ? c10::kHalf
                                               : c10::kFloat;
    model::write_model(*m, out.path(), dtype);
    if (!o->tokenizer.empty()) text::install_tokenizer(o->tokenizer, out.path(), m->config().vocab_size);
    out.commit();
    if (!o->tokenizer.empty()) {
      log_info("wrote ", o->out, " (llama, ", m->parameter_count(), " parameters, ", o->dtype,
               ", tokenizer from ", o->tokenizer, ")");
    } else {
      log_info("wrote ", o->out, " (llama, ", m->parameter_count(), " parameters, ", o->dtype,
               "); no --tokenizer given: the folder works on token ids only");
    }
  });
}

}  // namespace lethe::cli

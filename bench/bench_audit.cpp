// Benchmarks of the memorization audits (docs/audits.md) on the ~110M Llama (random weights,
// Llama-2 tokenizer, 32,000 tokens):
//   1. unconditional token forcing — every token id alone and after BOS, greedily decoded —
//      in new tokens/s, against the generator's own batched greedy decode of prompts of the
//      same shape (two tokens, the same batch, the same new tokens): the audit's overhead;
//   2. exact-rank canary exposure over a digit space, with the prefix computed once and its KV
//      cache reused, against every candidate scored whole by the shared scorer.
//   bench_audit [--tokenizer FILE] [--vocab N] [--new-tokens N] [--batch N] [--digits N] [--skip-whole]
// Defaults: the shared Llama-2 tokenizer, all 32,000 ids, 16 new tokens, batches of 256, a
// 6-digit secret (10^6 candidates). LETHE_BENCH_THREADS (default 2).
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "bench_models.h"
#include "lethe/audit/exposure.h"
#include "lethe/audit/forcing.h"
#include "lethe/core/runtime.h"
#include "lethe/model/generate.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"

namespace fs = std::filesystem;
using namespace lethe;

namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const char* t = std::getenv("LETHE_BENCH_THREADS");
  configure_runtime(t != nullptr ? std::atoi(t) : 2);
  const char* fx = std::getenv("LETHE_FIXTURES");
  const fs::path shared = fx != nullptr ? fs::path(fx) : fs::path(LETHE_SOURCE_DIR) / ".." / "shared";
  fs::path tok_path = shared / "data" / "tokenizers" / "llama2-spm" / "tokenizer.model";
  std::int64_t vocab = 0, new_tokens = 16, batch = 256, digits = 6;
  bool skip_whole = false;
  for (int i = 1; i < argc; ++i) {
    const bool has = i + 1 < argc;
    if (!std::strcmp(argv[i], "--skip-whole")) skip_whole = true;
    else if (has && !std::strcmp(argv[i], "--tokenizer")) tok_path = argv[++i];
    else if (has && !std::strcmp(argv[i], "--vocab")) vocab = std::atoll(argv[++i]);
    else if (has && !std::strcmp(argv[i], "--new-tokens")) new_tokens = std::atoll(argv[++i]);
    else if (has && !std::strcmp(argv[i], "--batch")) batch = std::atoll(argv[++i]);
    else if (has && !std::strcmp(argv[i], "--digits")) digits = std::atoll(argv[++i]);
    else {
      std::cerr << "bench_audit: unknown option " << argv[i] << "\n";
      return 2;
    }
  }
  try {
    auto tok = text::load_tokenizer(tok_path);
    auto model = model::create_model(bench::llama110m_config(), {}, /*seed=*/0);
    const char* core = std::getenv("OPENBLAS_CORETYPE");
    std::cout << "lethe audit benchmarks: llama 110M fp32 (random weights, Llama-2 tokenizer), "
              << (t ? std::atoi(t) : 2) << " threads, OPENBLAS_CORETYPE=" << (core ? core : "(auto)") << "\n\n";

    // 1. Token forcing against plain batched greedy decoding of the same shape.
    audit::ForcingOptions fo;
    fo.new_tokens = new_tokens;
    fo.batch_size = batch;
    fo.vocab_limit = vocab;
    fo.progress = false;
    const audit::ForcingResult fr = audit::token_forcing(*model, *tok, fo);
    const double forcing_rate = static_cast<double>(fr.generated_tokens) / fr.seconds;
    // The generator alone on the same [BOS, t] prompts in the same batches (at most 8: the rate
    // is steady by then), stopping at EOS as forcing does.
    model::GenerateOptions go;
    go.max_new_tokens = new_tokens;
    std::vector<std::int64_t> ids;
    const std::int64_t v = vocab > 0 ? std::min(vocab, tok->vocab_size()) : tok->vocab_size();
    for (std::int64_t id = 0; id < v; ++id) {
      if (!tok->is_special(id)) ids.push_back(id);
    }
    std::int64_t decoded = 0;
    const auto g0 = std::chrono::steady_clock::now();
    for (std::size_t lo = 0; lo < ids.size() && lo < 8 * static_cast<std::size_t>(batch); lo += static_cast<std::size_t>(batch)) {
      std::vector<std::vector<std::int64_t>> prompts;
      for (std::size_t i = lo; i < std::min(ids.size(), lo + static_cast<std::size_t>(batch)); ++i) prompts.push_back({1, ids[i]});
      for (const auto& row : model::generate(*model, prompts, go).tokens) decoded += static_cast<std::int64_t>(row.size());
    }
    const double decode_rate = static_cast<double>(decoded) / since(g0);
    std::cout << "| token forcing | value |\n|---|---|\n"
              << "| prompts (ids x {alone, after BOS}) | " << fr.prompts << " |\n"
              << "| new tokens per prompt | " << new_tokens << " |\n"
              << "| batch | " << batch << " |\n"
              << "| wall time | " << fr.seconds << " s |\n"
              << "| forcing rate | " << forcing_rate << " new tokens/s |\n"
              << "| generator's batched greedy decode, same shape | " << decode_rate << " new tokens/s |\n"
              << "| forcing / decode | " << 100 * forcing_rate / decode_rate << " % |\n\n";

    // 2. Exact-rank exposure over a digit space.
    const audit::Canary c{"The account PIN of Mara Velsen is {secret}, she said.", std::string(digits, '7'),
                          audit::CandidateSpace::parse("digits:" + std::to_string(digits), "bench")};
    audit::ExposureOptions eo;
    eo.batch_size = 64;
    auto e0 = std::chrono::steady_clock::now();
    const auto cached = audit::canary_exposure(*model, *tok, c, eo);
    const double cached_s = since(e0);
    std::cout << "| exposure, " << c.space.describe() << " (" << cached.candidates << " candidates) | value |\n|---|---|\n"
              << "| prefix computed once, KV cache reused | " << cached_s << " s ("
              << cached.candidates / cached_s << " candidates/s) |\n";
    if (!skip_whole) {
      eo.reuse_prefix = false;
      e0 = std::chrono::steady_clock::now();
      const auto whole = audit::canary_exposure(*model, *tok, c, eo);
      const double whole_s = since(e0);
      std::cout << "| every candidate scored whole | " << whole_s << " s (" << whole.candidates / whole_s
                << " candidates/s) |\n"
                << "| speed-up | " << whole_s / cached_s << " x |\n"
                << "| same rank | " << (whole.rank == cached.rank ? "yes" : "NO") << " (" << cached.rank << ") |\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_audit: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

// End-to-end benchmark of the TOFU suite on the ~110M Llama (random weights, Llama-2 tokenizer):
// wall time of the whole suite and its split between scoring and generation, then batched
// generation (8 prompts per KV-cache pass) against one prompt at a time on the same prompts.
//   bench_eval [--data DIR] [--tokenizer FILE] [--max-items N] [--max-new-tokens N] [--compare N]
// Defaults: ../shared/data/tofu, ../shared/data/tokenizers/llama2-spm/tokenizer.model, all items,
// 32 new tokens (a random model never stops at EOS; trained TOFU answers are ~30-50 tokens),
// 64 prompts in the comparison. LETHE_BENCH_THREADS (default 2).
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "bench_models.h"
#include "lethe/eval/engine.h"
#include "lethe/core/runtime.h"
#include "lethe/data/records.h"
#include "lethe/eval/evaluate.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"

namespace fs = std::filesystem;
using namespace lethe;

int main(int argc, char** argv) {
  const char* t = std::getenv("LETHE_BENCH_THREADS");
  configure_runtime(t != nullptr ? std::atoi(t) : 2);
  const char* fx = std::getenv("LETHE_FIXTURES");
  const fs::path shared = fx != nullptr ? fs::path(fx) : fs::path(LETHE_SOURCE_DIR) / ".." / "shared";
  fs::path data = shared / "data" / "tofu";
  fs::path tok_path = shared / "data" / "tokenizers" / "llama2-spm" / "tokenizer.model";
  std::int64_t max_items = 0, max_new = 32, compare = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--data")) data = argv[i + 1];
    else if (!std::strcmp(argv[i], "--tokenizer")) tok_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--max-items")) max_items = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--max-new-tokens")) max_new = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--compare")) compare = std::atoll(argv[i + 1]);
    else {
      std::cerr << "bench_eval: unknown option " << argv[i] << "\n";
      return 2;
    }
  }
  try {
    auto tok = text::load_tokenizer(tok_path);
    auto model = model::create_model(bench::llama110m_config(), {}, /*seed=*/0);

    eval::EvalOptions o;
    o.suite = "tofu";
    o.data = data;
    o.max_items = max_items;
    o.max_new_tokens = max_new;
    o.progress = false;
    const auto t0 = std::chrono::steady_clock::now();
    const eval::Json e = eval::evaluate_model(*model, *tok, o, nullptr);
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::size_t items = 0;
    for (const auto& [_, split] : e["splits"].items()) items += split["items"].size();
    const auto& tm = e["timing"];

    // Batched vs one at a time, same prompts, same greedy tokens.
    auto records = data::read_qa(data / "forget10.jsonl");
    records.resize(std::min<std::size_t>(records.size(), static_cast<std::size_t>(compare)));
    std::vector<std::vector<std::int64_t>> prompts;
    for (const auto& r : records) prompts.push_back(tok->encode(text::format_prompt(o.prompt_template, {}, r.question), true));
    double secs[2];
    std::int64_t batch_sizes[2] = {1, 8};
    for (int k = 0; k < 2; ++k) {
      eval::EngineOptions eo;
      eo.batch_size = batch_sizes[k];
      eo.progress = false;
      const auto g0 = std::chrono::steady_clock::now();
      eval::generate_texts(*model, *tok, prompts, max_new, {}, eo, "generation");
      secs[k] = std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count();
    }

    std::cout << "TOFU suite on llama 110M fp32 (random weights, Llama-2 tokenizer), " << (t ? std::atoi(t) : 2)
              << " threads, OPENBLAS_CORETYPE=" << (std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "(auto)")
              << ", " << max_new << " new tokens per item\n\n"
              << "| | value |\n|---|---|\n"
              << "| items (forget10, retain, real authors, world facts, holdout10) | " << items << " |\n"
              << "| wall time, whole suite | " << total << " s |\n"
              << "| scoring | " << tm["scoring_s"].get<double>() << " s, " << tm["scored_tokens"].get<std::int64_t>()
              << " tokens, " << tm["scored_tokens"].get<double>() / tm["scoring_s"].get<double>() << " tok/s |\n"
              << "| generation (batch 8) | " << tm["generation_s"].get<double>() << " s, "
              << tm["generated_tokens"].get<std::int64_t>() << " new tokens, "
              << tm["generated_tokens"].get<double>() / tm["generation_s"].get<double>() << " tok/s |\n"
              << "| generation of " << prompts.size() << " prompts, one at a time | " << secs[0] << " s |\n"
              << "| the same, 8 per batch | " << secs[1] << " s |\n"
              << "| batched speed-up | " << secs[0] / secs[1] << "x |\n";
  } catch (const std::exception& ex) {
    std::cerr << "bench_eval: " << ex.what() << "\n";
    return 1;
  }
  return 0;
}

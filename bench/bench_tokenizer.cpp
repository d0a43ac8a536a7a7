// Encode throughput of lethe's tokenizer on a JSONL corpus ({"text": ...} per line), one
// thread; optionally checks every document's ids against another implementation's output
// (one JSON array per line, same order). Used by bench/tokenizer/compare.sh.
//   bench_tokenizer TOKENIZER CORPUS.jsonl [OTHER_IDS.jsonl] [PASSES]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lethe/core/error.h"
#include "lethe/text/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: bench_tokenizer TOKENIZER CORPUS.jsonl [OTHER_IDS.jsonl] [PASSES]\n";
    return 2;
  }
  try {
    auto tok = lethe::text::load_tokenizer(argv[1]);
    std::vector<std::string> docs;
    {
      std::ifstream in(argv[2]);
      std::string line;
      while (std::getline(in, line))
        if (!line.empty()) docs.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
    }
    const int passes = argc > 4 ? std::atoi(argv[4]) : 3;
    std::size_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();
    std::vector<double> rates;
    std::vector<std::vector<std::int64_t>> first;
    std::size_t tokens = 0;
    for (int p = 0; p < passes; ++p) {
      const auto t0 = std::chrono::steady_clock::now();
      std::size_t n = 0;
      for (const auto& d : docs) {
        auto ids = tok->encode(d, /*add_special_tokens=*/false);
        n += ids.size();
        if (p == 0) first.push_back(std::move(ids));
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rates.push_back(static_cast<double>(bytes) / 1048576.0 / s);
      tokens = n;
    }
    std::size_t mismatched = 0, compared = 0;
    if (argc > 3 && std::string(argv[3]) != "-") {
      std::ifstream in(argv[3]);
      std::string line;
      for (std::size_t i = 0; std::getline(in, line) && i < first.size(); ++i) {
        ++compared;
        if (nlohmann::json::parse(line).get<std::vector<std::int64_t>>() != first[i]) {
          if (mismatched++ == 0) {
            std::cerr << "first mismatch: document " << i << ": "
                      << nlohmann::json(docs[i]).dump().substr(0, 200) << "\n";
          }
        }
      }
    }
    std::vector<double> sorted = rates;
    std::sort(sorted.begin(), sorted.end());
    nlohmann::json r = {{"impl", "lethe"},
                        {"mb_per_s_first", rates[0]},
                        {"mb_per_s_median", sorted[sorted.size() / 2]},
                        {"passes", passes},
                        {"bytes", bytes},
                        {"tokens", tokens},
                        {"documents", docs.size()},
                        {"compared", compared},
                        {"mismatched", mismatched}};
    std::cout << r.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_tokenizer: " << e.what() << "\n";
    return 1;
  }
}

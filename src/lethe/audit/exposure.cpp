#include "lethe/audit/exposure.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/data/dataset.h"
#include "lethe/eval/engine.h"

namespace lethe::audit {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr const char* kSlot = "{secret}";

}  // namespace

CandidateSpace CandidateSpace::parse(const Json& j, const std::string& where) {
  CandidateSpace s;
  if (j.is_array()) {
    std::set<std::string> seen;
    for (const auto& c : j) {
      LETHE_CHECK(c.is_string(), where, ": \"space\" as a list holds strings only, got ", c.dump());
      LETHE_CHECK(seen.insert(c.get<std::string>()).second, where, ": \"space\" lists '", c.get<std::string>(),
                  "' twice");
      s.list_.push_back(c);
    }
    LETHE_CHECK(s.list_.size() >= 2, where, ": \"space\" as a list needs at least two candidates");
    return s;
  }
  LETHE_CHECK(j.is_string(), where, ": \"space\" must be digits:N, letters:N, hex:N or a list of strings, got ",
              j.dump());
  const std::string v = j;
  const auto colon = v.find(':');
  const std::string kind = v.substr(0, colon);
  if (kind == "digits") s.alphabet_ = "0123456789";
  if (kind == "letters") s.alphabet_ = "abcdefghijklmnopqrstuvwxyz";
  if (kind == "hex") s.alphabet_ = "0123456789abcdef";
  int n = 0;
  std::size_t used = 0;
  if (colon != std::string::npos) {
    try {
      n = std::stoi(v.substr(colon + 1), &used);
    } catch (const std::exception&) {
      n = 0;
    }
  }
  LETHE_CHECK(!s.alphabet_.empty() && colon != std::string::npos && used == v.size() - colon - 1 && n >= 1 && n <= 64,
              where, ": \"space\" '", v, "' is not digits:N, letters:N or hex:N with N from 1 to 64");
  s.length_ = n;
  return s;
}

double CandidateSpace::log2_size() const {
  if (!list_.empty()) return std::log2(static_cast<double>(list_.size()));
  return length_ * std::log2(static_cast<double>(alphabet_.size()));
}

std::uint64_t CandidateSpace::size() const {
  if (!list_.empty()) return list_.size();
  if (log2_size() >= 63) return 0;
  std::uint64_t n = 1;
  for (int i = 0; i < length_; ++i) n *= alphabet_.size();
  return n;
}

std::string CandidateSpace::at(std::uint64_t i) const {
  if (!list_.empty()) return list_.at(i);
  std::string s(static_cast<std::size_t>(length_), alphabet_[0]);
  for (int k = length_ - 1; k >= 0; --k) {
    s[static_cast<std::size_t>(k)] = alphabet_[i % alphabet_.size()];
    i /= alphabet_.size();
  }
  return s;
}

bool CandidateSpace::contains(const std::string& s) const {
  if (!list_.empty()) return std::find(list_.begin(), list_.end(), s) != list_.end();
  return static_cast<int>(s.size()) == length_ &&
         std::all_of(s.begin(), s.end(), [&](char c) { return alphabet_.find(c) != std::string::npos; });
}

std::string CandidateSpace::describe() const {
  if (!list_.empty()) return "list:" + std::to_string(list_.size());
  const std::string kind = alphabet_.size() == 10 ? "digits" : alphabet_.size() == 16 ? "hex" : "letters";
  return kind + ":" + std::to_string(length_);
}

std::string Canary::prefix() const { return text.substr(0, text.find(kSlot)); }
std::string Canary::suffix() const { return text.substr(text.find(kSlot) + std::string(kSlot).size()); }

std::vector<Canary> read_canaries(const fs::path& jsonl) {
  std::vector<Canary> out;
  std::istringstream in(read_file(jsonl));
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = jsonl.string() + ": line " + std::to_string(n);
    const Json r = json_named(where, [&] { return Json::parse(line); });
    for (const char* k : {"text", "secret"}) {
      LETHE_CHECK(r.is_object() && r.contains(k) && r[k].is_string(), where, ": a canary needs a string \"", k,
                  "\" ({\"text\": \"... {secret} ...\", \"secret\": \"...\", \"space\": \"digits:N\"})");
    }
    LETHE_CHECK(r.contains("space"), where, ": a canary needs \"space\" (digits:N, letters:N, hex:N or a list)");
    Canary c;
    c.text = r["text"];
    c.secret = r["secret"];
    const auto first = c.text.find(kSlot);
    LETHE_CHECK(first != std::string::npos && c.text.find(kSlot, first + 1) == std::string::npos, where,
                ": \"text\" must hold {secret} exactly once");
    c.space = CandidateSpace::parse(r["space"], where);
    LETHE_CHECK(c.space.contains(c.secret), where, ": the secret '", c.secret, "' is not in its space ",
                c.space.describe());
    out.push_back(std::move(c));
  }
  LETHE_CHECK(!out.empty(), jsonl.string(), ": no canaries");
  return out;
}

Exposure exposure_from_nlls(double secret, const std::vector<double>& candidates) {
  LETHE_CHECK(!candidates.empty(), "exposure: no candidates");
  Exposure e;
  e.candidates = candidates.size();
  // Ties count against the secret (it is among the candidates, so rank >= 1).
  e.rank = static_cast<std::uint64_t>(
      std::max<std::ptrdiff_t>(1, std::count_if(candidates.begin(), candidates.end(), [&](double c) { return c <= secret; })));
  e.secret_nll = secret;
  e.exposure = std::log2(static_cast<double>(e.candidates)) - std::log2(static_cast<double>(e.rank));
  return e;
}

Exposure canary_exposure(model::CausalLM& model, const text::Tokenizer& tok, const Canary& c,
                         const ExposureOptions& o) {
  const auto slot = c.text.find(kSlot);
  LETHE_CHECK(slot != std::string::npos && c.text.find(kSlot, slot + 1) == std::string::npos, "exposure: '", c.text,
              "' must hold {secret} exactly once");
  LETHE_CHECK(c.space.contains(c.secret), "exposure: the secret '", c.secret, "' is not in its space ",
              c.space.describe());
  const std::uint64_t n = c.space.size();
  LETHE_CHECK(n > 0 && n <= o.max_exact, "exposure: the space ", c.space.describe(), " of '", c.text, "' has 2^",
              c.space.log2_size(), " candidates, more than the ", o.max_exact,
              " ranked exactly; the sampled estimate for larger spaces is not built yet");
  const std::string prefix = c.prefix(), suffix = c.suffix();
  eval::EngineOptions eo;
  eo.batch_size = o.batch_size;
  eo.progress = false;
  const std::int64_t pad = text::padding_id(tok);
  std::vector<double> nlls;
  nlls.reserve(n);
  double secret = 0;
  constexpr std::uint64_t kChunk = 4096;  // candidates tokenized at a time: memory stays flat
  for (std::uint64_t lo = 0; lo < n; lo += kChunk) {
    const std::uint64_t hi = std::min(n, lo + kChunk);
    std::vector<std::string> candidates;
    std::vector<data::Example> ex;
    for (std::uint64_t i = lo; i < hi; ++i) {
      candidates.push_back(c.space.at(i));
      ex.push_back(data::scoring_example(tok, prefix, candidates.back() + suffix, o.max_length));
    }
    const auto scores = eval::score_examples(model, ex, pad, /*extras=*/false, eo, "exposure");
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      double s = 0;
      for (float lp : scores[i].logprobs) s -= lp;
      nlls.push_back(s);
      if (candidates[i] == c.secret) secret = s;
    }
    if (o.progress && n > kChunk) log_info("exposure: ", hi, " of ", n, " candidates scored");
  }
  Exposure e = exposure_from_nlls(secret, nlls);
  e.text = c.text;
  e.secret = c.secret;
  return e;
}

}  // namespace lethe::audit

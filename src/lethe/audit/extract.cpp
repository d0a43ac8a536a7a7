#include "lethe/audit/extract.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <numeric>

#include "audit/audits.h"
#include "lethe/core/error.h"
#include "lethe/core/labels.h"
#include "lethe/core/log.h"
#include "lethe/data/dataset.h"
#include "lethe/data/records.h"
#include "lethe/eval/engine.h"
#include "lethe/eval/metrics.h"
#include "lethe/model/load.h"
#include "lethe/core/runtime.h"

namespace lethe::audit {

namespace {

std::uint64_t hash_words(const std::vector<std::string>& w, std::size_t from, std::size_t n) {
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a
  for (std::size_t i = from; i < from + n; ++i) {
    for (unsigned char c : w[i]) h = (h ^ c) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;  // a separator, so "ab c" and "a bc" differ
  }
  return h;
}

std::string ascii_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Mean NLL (nats) of `rest` after `prefix` for every pair, through the shared scorer.
std::vector<double> mean_nlls(model::CausalLM& model, const text::Tokenizer& tok, const std::vector<std::string>& prefixes,
                              const std::vector<std::string>& rests, const ExtractOptions& o, const std::string& label) {
  // A sample that stopped at once (EOS first) has no tokens to score: NaN, ranked by no signal.
  std::vector<data::Example> ex;
  std::vector<std::size_t> at;
  for (std::size_t i = 0; i < rests.size(); ++i) {
    data::Example e = data::scoring_example(tok, prefixes[i], rests[i], o.max_length);
    if (std::none_of(e.labels.begin(), e.labels.end(), [](std::int64_t l) { return l != kIgnoreIndex; })) continue;
    ex.push_back(std::move(e));
    at.push_back(i);
  }
  eval::EngineOptions eo;
  eo.batch_size = o.batch_size;
  eo.progress = o.progress;
  std::vector<double> out(rests.size(), NAN);
  if (ex.empty()) return out;
  const auto scores = eval::score_examples(model, ex, text::padding_id(tok), false, eo, label);
  for (std::size_t k = 0; k < scores.size(); ++k) out[at[k]] = eval::avg_nll(scores[k]);
  return out;
}

}  // namespace

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

NgramIndex::NgramIndex(int n) : n_(n) { LETHE_CHECK(n >= 1, "n-gram index: n must be >= 1, got ", n); }

std::size_t NgramIndex::add(const std::string& text, std::int64_t repetitions) {
  const std::size_t doc = repetitions_.size();
  LETHE_CHECK(doc < kShared, "n-gram index: more than ", kShared - 1, " documents");
  repetitions_.push_back(repetitions);
  const auto w = split_words(text);
  for (std::size_t i = 0; i + n_ <= w.size(); ++i) {
    const auto [it, fresh] = owner_.emplace(hash_words(w, i, n_), static_cast<std::uint32_t>(doc));
    if (!fresh && it->second != doc) it->second = kShared;
  }
  return doc;
}

void NgramIndex::add_jsonl(const std::filesystem::path& jsonl) {
  std::size_t before = documents();
  for_each_record(jsonl, [&](const std::string& where, const Json& r) {
    if (r.is_string()) {
      add(r.get<std::string>());
      return;
    }
    LETHE_CHECK(r.is_object() && r.contains("text") && r["text"].is_string(), where,
                ": a corpus record needs a string \"text\"");
    add(r["text"].get<std::string>(), repetitions_of(r, where));
  });
  LETHE_CHECK(documents() > before, jsonl.string(), ": no records");
}

NgramIndex::Match NgramIndex::match(const std::string& text) const {
  const auto w = split_words(text);
  std::vector<bool> covered(w.size(), false);
  Match m;
  for (std::size_t i = 0; i + n_ <= w.size(); ++i) {
    const auto it = owner_.find(hash_words(w, i, n_));
    if (it == owner_.end()) continue;
    std::fill(covered.begin() + i, covered.begin() + i + n_, true);
    if (it->second != kShared) m.documents.push_back(it->second);
  }
  m.covered_words = static_cast<std::size_t>(std::count(covered.begin(), covered.end(), true));
  std::sort(m.documents.begin(), m.documents.end());
  m.documents.erase(std::unique(m.documents.begin(), m.documents.end()), m.documents.end());
  return m;
}

std::vector<ExtractSample> extraction_scan(model::CausalLM& model, const text::Tokenizer& tok, const NgramIndex* corpus,
                                           model::CausalLM* reference, const text::Tokenizer* reference_tok,
                                           const ExtractOptions& o) {
  LETHE_CHECK(o.samples >= 1 && o.new_tokens >= 1 && o.top_k >= 1, "extract: samples, new tokens and top-k must be >= 1");
  LETHE_CHECK(!reference || reference_tok, "extract: a reference model needs its tokenizer");
  std::vector<std::vector<std::int64_t>> prompts;
  std::vector<std::string> prompt_texts;
  for (std::int64_t i = 0; i < o.samples; ++i) {
    if (o.prefixes.empty()) {
      // From BOS, or where a tokenizer has none, from the EOS that separates documents (GPT-2).
      const auto start = tok.special().bos ? tok.special().bos : tok.special().eos;
      LETHE_CHECK(start.has_value(), "extract: the tokenizer has neither BOS nor EOS to sample from; give prefixes");
      prompts.push_back({*start});
      prompt_texts.emplace_back();
    } else {
      const std::string& p = o.prefixes[static_cast<std::size_t>(i) % o.prefixes.size()];
      prompts.push_back(tok.encode(p, true));
      LETHE_CHECK(!prompts.back().empty(), "extract: the prefix '", p, "' encodes to no tokens");
      prompt_texts.push_back(p);
    }
  }
  eval::EngineOptions eo;
  eo.batch_size = o.batch_size;
  eo.progress = o.progress;
  eval::Decoding dec;
  dec.temperature = 1.0;
  dec.top_k = o.top_k;
  dec.seed = o.seed;
  const auto gens = eval::generate_texts(model, tok, prompts, o.new_tokens, {}, eo, "extract: sampling", dec);

  std::vector<ExtractSample> out(gens.size());
  std::vector<std::string> texts, lowered;
  for (std::size_t i = 0; i < gens.size(); ++i) {
    out[i].prompt = prompt_texts[i];
    out[i].text = gens[i].text;
    texts.push_back(gens[i].text);
    lowered.push_back(ascii_lower(gens[i].text));
  }
  const auto nll = mean_nlls(model, tok, prompt_texts, texts, o, "extract: scoring");
  const auto low = mean_nlls(model, tok, prompt_texts, lowered, o, "extract: lowercase");
  std::vector<double> ref;
  if (reference) ref = mean_nlls(*reference, *reference_tok, prompt_texts, texts, o, "extract: reference");
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto& s = out[i];
    s.signals["perplexity"] = std::exp(nll[i]);
    const double z = static_cast<double>(eval::zlib_compressed_size(s.text));
    s.signals["zlib"] = nll[i] / std::max(z, 1.0);
    s.signals["lowercase"] = nll[i] / low[i];
    if (reference) s.signals["reference"] = nll[i] / ref[i];
    if (corpus) {
      NgramIndex::Match m = corpus->match(s.text);
      s.covered_words = m.covered_words;
      s.documents = std::move(m.documents);
      s.memorized = s.covered_words > 0;
    }
  }
  return out;
}

std::vector<double> top_memorized(const std::vector<ExtractSample>& samples, const std::string& signal, std::int64_t k) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto it = samples[i].signals.find(signal);
    if (it != samples[i].signals.end() && std::isfinite(it->second)) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return samples[a].signals.at(signal) < samples[b].signals.at(signal); });
  std::vector<double> hit;
  for (std::size_t i = 0; i < order.size() && static_cast<std::int64_t>(i) < k; ++i) {
    hit.push_back(samples[order[i]].memorized ? 1.0 : 0.0);
  }
  return hit;
}

namespace {

// What the scan needs besides the model, the same for every audited one.
struct ExtractInputs {
  ExtractOptions options;
  NgramIndex corpus;
  std::shared_ptr<model::CausalLM> reference;
  std::shared_ptr<const text::Tokenizer> reference_tok;
  explicit ExtractInputs(int ngram) : corpus(ngram) {}
};

Json run_extract(model::CausalLM& model, const text::Tokenizer& tok, const AuditOptions& o, const ExtractInputs& in) {
  const ExtractOptions& eo = in.options;
  const NgramIndex& corpus = in.corpus;
  const auto& ref = in.reference;
  const auto& ref_tok = in.reference_tok;
  const auto samples = extraction_scan(model, tok, &corpus, ref.get(), ref_tok.get(), eo);
  Json items = Json::array();
  std::size_t memorized = 0;
  std::vector<bool> extracted(corpus.documents(), false);
  for (const auto& s : samples) {
    Json j = {{"prompt", s.prompt}, {"text", s.text}, {"memorized", s.memorized}, {"covered_words", s.covered_words}};
    if (!s.documents.empty()) j["documents"] = s.documents;
    for (auto d : s.documents) extracted[d] = true;
    for (const auto& [k, v] : s.signals) j[k] = std::isfinite(v) ? Json(v) : Json();
    items.push_back(j);
    memorized += s.memorized ? 1 : 0;
  }
  Json precision = Json::object();
  std::vector<std::string> signals = {"perplexity", "zlib", "lowercase"};
  if (ref) signals.emplace_back("reference");
  for (const auto& sig : signals) precision[sig] = mean_with_ci(top_memorized(samples, sig, eo.top), o.seed);
  Json agg = {{"samples", samples.size()},
              {"memorized", memorized},
              {"memorized_share", samples.empty() ? 0.0 : static_cast<double>(memorized) / samples.size()},
              {"top", eo.top},
              {"precision_at_top", precision},
              {"ngram_words", eo.ngram},
              {"corpus_ngrams", corpus.size()},
              {"signals", signals}};
  // Against duplication: the share of the corpus documents trained d times that some sample
  // reproduces, for a corpus whose records say how often (the insertion study's insert_text).
  std::map<std::int64_t, std::vector<double>> by;
  for (std::size_t d = 0; d < corpus.documents(); ++d) {
    if (corpus.repetitions(d) > 0) by[corpus.repetitions(d)].push_back(extracted[d] ? 1.0 : 0.0);
  }
  agg["documents_extracted"] = std::count(extracted.begin(), extracted.end(), true);
  if (!by.empty()) agg["by_repetitions"] = by_repetitions_json(by, o.seed);
  return {{"items", items}, {"aggregate", agg}};
}

AuditRun prepare_extract(const AuditOptions& o) {
  auto in = std::make_shared<ExtractInputs>(o.extract.ngram);
  in->options = o.extract;
  in->options.progress = o.progress;
  in->options.seed = o.seed;
  if (!o.prefixes.empty()) in->options.prefixes = data::read_texts(o.prefixes);
  in->corpus.add_jsonl(o.corpus);
  if (!o.reference.empty()) {
    model::LoadOptions lo;
    lo.device = parse_device(o.device);
    in->reference = model::load_model(o.reference, lo);
    in->reference_tok = text::load_tokenizer(o.reference);
  }
  return [o, in](model::CausalLM& m, const text::Tokenizer& t) { return run_extract(m, t, o, *in); };
}

}  // namespace

const Audit& extract_audit() {
  static const Audit a{"extract",
                       "training-data extraction (Carlini et al. 2021): top-k sampling, membership ranking, corpus n-gram check",
                       "--corpus", &prepare_extract};
  return a;
}

}  // namespace lethe::audit

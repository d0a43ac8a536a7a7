#include "lethe/data/dataset.h"

#include <algorithm>

#include "lethe/core/error.h"
#include "lethe/core/random.h"

namespace lethe::data {

std::uint64_t mix64(std::uint64_t x) { return splitmix64(x); }

std::vector<Example> qa_examples(const text::Tokenizer& tok, const text::PromptTemplate& tmpl,
                                 const std::vector<QARecord>& records, std::size_t max_length,
                                 text::SpanRule rule, text::Truncation* truncation) {
  std::vector<Example> out;
  out.reserve(records.size());
  for (const auto& r : records) {
    auto e = text::encode_qa(tok, tmpl, {r.question, r.answer}, max_length, {}, rule);
    if (truncation) truncation->add(e);
    out.push_back({std::move(e.input_ids), std::move(e.labels)});
  }
  return out;
}

std::vector<Example> idk_examples(const text::Tokenizer& tok, const text::PromptTemplate& tmpl,
                                  const std::vector<QARecord>& records,
                                  const std::vector<std::string>& refusals, std::uint64_t seed,
                                  std::size_t max_length, text::Truncation* truncation) {
  LETHE_CHECK(!refusals.empty(), "IdK examples need at least one refusal string");
  std::vector<Example> out;
  out.reserve(records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    const std::string& refusal = refusals[mix64(seed ^ mix64(i)) % refusals.size()];
    auto e = text::encode_qa(tok, tmpl, {records[i].question, refusal}, max_length);
    if (truncation) truncation->add(e);
    out.push_back({std::move(e.input_ids), std::move(e.labels)});
  }
  return out;
}

std::vector<Example> completion_examples(const text::Tokenizer& tok,
                                         const std::vector<CompletionRecord>& records,
                                         std::size_t max_length, bool insert_space) {
  std::vector<Example> out;
  out.reserve(records.size());
  for (const auto& r : records) {
    auto full = tok.encode(r.prompt + (insert_space ? " " : "") + r.continuation, true);
    const auto prefix = tok.encode(r.prompt, true);
    if (full.size() > prefix.size() + max_length) full.resize(prefix.size() + max_length);
    const std::size_t masked = std::max<std::size_t>(prefix.size(), 1);
    Example e;
    e.labels = full;
    for (std::size_t i = 0; i < masked && i < e.labels.size(); ++i) e.labels[i] = kIgnoreIndex;
    e.input_ids = std::move(full);
    out.push_back(std::move(e));
  }
  return out;
}

Example scoring_example(const text::Tokenizer& tok, const std::string& prefix, const std::string& rest,
                        std::size_t max_length) {
  LETHE_CHECK(max_length >= 2, "scoring_example: max_length must be >= 2");
  const auto full = tok.encode(prefix + rest, true);
  std::size_t n = 1;  // with no prefix the first token (BOS) has no prediction
  if (!prefix.empty()) {
    const auto pids = tok.encode(prefix, true);
    n = 0;
    while (n < pids.size() && n < full.size() && pids[n] == full[n]) ++n;
  }
  n = std::min(n, full.size());
  const std::size_t c_keep = std::min(full.size() - n, max_length - 1);
  const std::size_t p_keep = std::max<std::size_t>(std::min(n, max_length - c_keep), 1);
  Example e;
  e.input_ids.assign(full.begin() + static_cast<std::ptrdiff_t>(n - std::min(n, p_keep)),
                     full.begin() + static_cast<std::ptrdiff_t>(n + c_keep));
  e.labels = e.input_ids;
  for (std::size_t i = 0; i < std::min(p_keep, e.labels.size()); ++i) e.labels[i] = kIgnoreIndex;
  return e;
}

std::vector<Example> pretraining_chunks(const text::Tokenizer& tok, const std::vector<std::string>& texts,
                                        std::size_t max_length) {
  LETHE_CHECK(max_length >= 2, "pretraining chunks need max_length >= 2");
  const auto eos = tok.special().eos;
  LETHE_CHECK(eos.has_value(), "pretraining chunks need a tokenizer with an EOS token");
  std::vector<std::int64_t> all;
  for (const auto& t : texts) {
    auto ids = tok.encode(t, true);
    all.insert(all.end(), ids.begin(), ids.end());
    if (all.empty() || all.back() != *eos) all.push_back(*eos);
  }
  std::vector<Example> out;
  for (std::size_t i = 0; i < all.size(); i += max_length) {
    const std::size_t n = std::min(max_length, all.size() - i);
    if (n < 2) break;
    Example e;
    e.input_ids.assign(all.begin() + static_cast<std::ptrdiff_t>(i), all.begin() + static_cast<std::ptrdiff_t>(i + n));
    e.labels = e.input_ids;
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, std::uint64_t epoch) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::uint64_t state = mix64(seed ^ mix64(epoch + 0x100));
  for (std::size_t i = n; i > 1; --i) {
    state = mix64(state);
    std::swap(order[i - 1], order[state % i]);
  }
  return order;
}

const std::vector<std::string>& insertion_timings() {
  static const std::vector<std::string> t = {"spread", "first", "last"};
  return t;
}

std::vector<std::vector<std::size_t>> insertion_schedule(const std::vector<std::int64_t>& repetitions,
                                                         std::int64_t epochs, const std::string& timing,
                                                         std::uint64_t seed) {
  LETHE_CHECK(epochs >= 1, "insertions: the run needs at least one epoch, got ", epochs);
  const auto& known = insertion_timings();
  LETHE_CHECK(std::find(known.begin(), known.end(), timing) != known.end(),
              "insertions: timing must be spread, first or last, got '", timing, "'");
  std::vector<std::vector<std::size_t>> out(static_cast<std::size_t>(epochs));
  for (std::size_t i = 0; i < repetitions.size(); ++i) {
    const std::int64_t d = repetitions[i];
    LETHE_CHECK(d >= 1, "insertions: document ", i, " has ", d, " repetitions (>= 1 needed)");
    // 53 random bits as a double in [0, 1).
    const double u = static_cast<double>(mix64(seed ^ kInsertStream ^ mix64(i + 1)) >> 11) * 0x1.0p-53;
    for (std::int64_t j = 0; j < d; ++j) {
      std::int64_t e = 0;
      if (timing == "last") {
        e = epochs - 1;
      } else if (timing == "spread") {
        e = std::min<std::int64_t>(epochs - 1, static_cast<std::int64_t>((static_cast<double>(j) + u) *
                                                                         static_cast<double>(epochs) / static_cast<double>(d)));
      }
      out[static_cast<std::size_t>(e)].push_back(i);
    }
  }
  return out;
}

std::size_t paired_retain_index(std::size_t i, std::size_t n_retain, std::uint64_t seed,
                                std::uint64_t epoch) {
  LETHE_CHECK(n_retain > 0, "pairing needs a non-empty retain set");
  // Cycles past the end of one permutation continue into the next epoch-salted one.
  const std::uint64_t round = i / n_retain;
  return epoch_order(n_retain, seed ^ kRetainStream, epoch * 1'000'003ULL + round)[i % n_retain];
}

std::vector<const Example*> pick(const std::vector<Example>& examples, const std::vector<std::size_t>& indices) {
  std::vector<const Example*> out;
  out.reserve(indices.size());
  for (auto i : indices) out.push_back(&examples[i]);
  return out;
}

std::int64_t count_tokens(const std::vector<Example>& examples, const std::vector<std::size_t>& indices) {
  std::int64_t n = 0;
  for (auto i : indices) n += static_cast<std::int64_t>(examples[i].input_ids.size());
  return n;
}

}  // namespace lethe::data

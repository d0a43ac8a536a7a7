#include "text/sentencepiece_tokenizer.h"

#include <algorithm>
#include <cstring>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "text/hf_pipeline.h"
#include "text/spm_backend.h"
#include "text/unicode.h"

namespace lethe::text {
namespace fs = std::filesystem;

// ---- SentencePiece ---------------------------------------------------------------------------

SentencePieceTokenizer::SentencePieceTokenizer(const fs::path& model)
    : sp_(spm_load(read_file(model), model.string())), path_(model) {
  SpecialTokens s;
  auto id_of = [&](int id) -> std::optional<std::int64_t> {
    if (id < 0) return std::nullopt;
    return id;
  };
  s.bos = id_of(sp_->bos_id());
  s.eos = id_of(sp_->eos_id());
  s.unk = id_of(sp_->unk_id());
  s.pad = id_of(sp_->pad_id());
  if (s.bos) s.bos_token = sp_->id_to_piece(static_cast<int>(*s.bos));
  if (s.eos) s.eos_token = sp_->id_to_piece(static_cast<int>(*s.eos));
  if (s.unk) s.unk_token = sp_->id_to_piece(static_cast<int>(*s.unk));
  if (s.pad) s.pad_token = sp_->id_to_piece(static_cast<int>(*s.pad));
  special_ = s;
  for (int i = 0; i < sp_->piece_size(); ++i) {
    if (sp_->is_control(i) || sp_->is_unknown(i)) control_texts_.emplace_back(sp_->id_to_piece(i), i);
  }
  std::sort(control_texts_.begin(), control_texts_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<std::int64_t> SentencePieceTokenizer::encode_valid(std::string_view text,
                                                         bool add_special_tokens) const {
  std::vector<std::int64_t> ids;
  if (add_special_tokens && add_bos_ && special_.bos) ids.push_back(*special_.bos);
  auto encode_run = [&](std::string_view run) {
    if (run.empty()) return;
    std::vector<int> out;
    std::string error;
    LETHE_CHECK(sp_->encode(run, out, error), path_.string(), ": encoding failed (", error, ")");
    ids.insert(ids.end(), out.begin(), out.end());
  };
  std::size_t last = 0;
  for (std::size_t i = 0; i < text.size();) {
    bool hit = false;
    for (const auto& [t, id] : control_texts_) {
      if (!t.empty() && text.compare(i, t.size(), t) == 0) {
        encode_run(text.substr(last, i - last));
        ids.push_back(id);
        i += t.size();
        last = i;
        hit = true;
        break;
      }
    }
    if (!hit) ++i;
  }
  encode_run(text.substr(last));
  if (add_special_tokens && add_eos_ && special_.eos) ids.push_back(*special_.eos);
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<std::int64_t>& ids,
                                           bool skip_special_tokens) const {
  std::string out;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    std::string piece, error;
    LETHE_CHECK(sp_->decode(run, piece, error), path_.string(), ": decoding failed (", error, ")");
    out += piece;
    run.clear();
  };
  for (auto id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (is_special(id)) {
      if (skip_special_tokens) continue;
      flush();
      out += sp_->id_to_piece(static_cast<int>(id));
      continue;
    }
    run.push_back(static_cast<int>(id));
  }
  flush();
  out = utf8_lossy(out);
  return clean_up_ ? clean_up_tokenization(std::move(out)) : out;
}

std::string SentencePieceTokenizer::id_to_token(std::int64_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return sp_->id_to_piece(static_cast<int>(id));
}

std::optional<std::int64_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const int id = sp_->piece_to_id(token);
  // Unknown pieces come back as the unk id: only trust an id whose piece matches.
  if (id < 0 || sp_->id_to_piece(id) != token) return std::nullopt;
  return id;
}

std::int64_t SentencePieceTokenizer::vocab_size() const { return sp_->piece_size(); }

bool SentencePieceTokenizer::is_special(std::int64_t id) const {
  return id >= 0 && id < vocab_size() &&
         (sp_->is_control(static_cast<int>(id)) || sp_->is_unknown(static_cast<int>(id)));
}

void train_sentencepiece_bpe(const std::vector<std::string>& sentences, const fs::path& model_path,
                             const SentencePieceTrainOptions& o) {
  LETHE_CHECK(!sentences.empty(), "train_sentencepiece_bpe: no training text");
  LETHE_CHECK(o.vocab_size > 3, "train_sentencepiece_bpe: vocab_size must exceed 3");
  std::string symbols;
  for (const auto& s : o.user_defined_symbols) symbols += (symbols.empty() ? "" : ",") + s;
  std::size_t longest = 0;
  for (const auto& s : sentences) longest = std::max(longest, s.size());
  // Llama-style settings: BPE, byte fallback, digits split, no text normalization, and ids
  // 0/1/2 = <unk>/<s>/</s> as in Llama and llama2.c.
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"pad_id", "-1"},
      {"num_threads", "1"},
      {"max_sentence_length", std::to_string(std::max<std::size_t>(longest + 1, 4192))},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"minloglevel", "2"},
  };
  if (!symbols.empty()) args["user_defined_symbols"] = symbols;
  write_file_atomic(model_path, spm_train(sentences, args));
}

// ---- llama2.c tokenizer.bin ------------------------------------------------------------------

Llama2cTokenizer::Llama2cTokenizer(const fs::path& file) {
  const std::string raw = read_file(file);
  const std::string src = file.string();
  LETHE_CHECK(raw.size() >= 4, src, ": too small for a llama2.c tokenizer");
  std::size_t p = 4;  // max_token_length (not needed)
  while (p < raw.size()) {
    LETHE_CHECK(p + 8 <= raw.size(), src, ": truncated entry ", pieces_.size(), " at byte ", p);
    float score;
    std::int32_t len;
    std::memcpy(&score, raw.data() + p, 4);
    std::memcpy(&len, raw.data() + p + 4, 4);
    p += 8;
    LETHE_CHECK(len >= 0 && static_cast<std::size_t>(len) <= raw.size() - p, src, ": entry ",
                pieces_.size(), " has length ", len, " past the end of the file");
    pieces_.emplace_back(raw.substr(p, static_cast<std::size_t>(len)));
    scores_.push_back(score);
    p += static_cast<std::size_t>(len);
  }
  LETHE_CHECK(pieces_.size() >= 259, src, ": ", pieces_.size(),
              " entries — a llama2.c tokenizer has <unk>, <s>, </s> and 256 byte pieces at least");
  for (std::size_t i = 0; i < pieces_.size(); ++i) lookup_.emplace(pieces_[i], static_cast<std::int64_t>(i));
  for (std::int64_t i = 0; i < vocab_size(); ++i) by_token_.emplace(id_to_token(i), i);
  SpecialTokens s;
  s.unk = 0;
  s.bos = 1;
  s.eos = 2;
  s.unk_token = "<unk>";
  s.bos_token = "<s>";
  s.eos_token = "</s>";
  special_ = s;
}

std::vector<std::int64_t> Llama2cTokenizer::encode_valid(std::string_view text, bool add_special_tokens) const {
  std::vector<std::int64_t> t;
  if (add_special_tokens) t.push_back(1);
  if (!text.empty()) {
    auto it = lookup_.find(" ");
    LETHE_CHECK(it != lookup_.end(), "llama2.c tokenizer has no ' ' piece for the dummy prefix");
    t.push_back(it->second);
  }
  for (std::size_t i = 0; i < text.size();) {
    // A code point: the lead byte and up to 3 continuation bytes (llama2.c's rule).
    std::size_t n = 1;
    while (i + n < text.size() && n < 4 && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
    const std::string unit(text.substr(i, n));
    auto it = lookup_.find(unit);
    if (it != lookup_.end()) {
      t.push_back(it->second);
    } else {
      for (unsigned char c : unit) t.push_back(static_cast<std::int64_t>(c) + 3);
    }
    i += n;
  }
  while (true) {
    float best = -1e10f;
    std::int64_t best_id = -1;
    std::size_t best_i = 0;
    for (std::size_t i = 0; i + 1 < t.size(); ++i) {
      auto it = lookup_.find(pieces_[t[i]] + pieces_[t[i + 1]]);
      if (it != lookup_.end() && scores_[it->second] > best) {
        best = scores_[it->second];
        best_id = it->second;
        best_i = i;
      }
    }
    if (best_id < 0) break;
    t[best_i] = best_id;
    t.erase(t.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
  }
  return t;
}

std::string Llama2cTokenizer::decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens) const {
  std::string out;
  bool first = true;
  for (auto id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (is_special(id)) {
      if (!skip_special_tokens) out += id == 1 ? "<s>" : id == 2 ? "</s>" : "<unk>";
      continue;
    }
    const std::string& piece = pieces_[static_cast<std::size_t>(id)];
    unsigned int byte = 0;
    if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1) {
      out += static_cast<char>(byte);
    } else {
      // The dummy prefix's space is dropped at the start, as SentencePiece does.
      out += first && !piece.empty() && piece[0] == ' ' ? piece.substr(1) : piece;
    }
    first = false;
  }
  return utf8_lossy(out);
}

std::string Llama2cTokenizer::id_to_token(std::int64_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  if (id == 1) return "<s>";
  if (id == 2) return "</s>";
  std::string p = pieces_[static_cast<std::size_t>(id)], out;
  for (char c : p) out += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
  return out;
}

std::optional<std::int64_t> Llama2cTokenizer::token_to_id(std::string_view token) const {
  auto it = by_token_.find(std::string(token));
  if (it == by_token_.end()) return std::nullopt;
  return it->second;
}

std::string Llama2cTokenizer::to_tokenizer_json() const {
  const std::int64_t n = vocab_size();
  std::vector<std::string> tok(static_cast<std::size_t>(n));
  Json vocab = Json::object();
  for (std::int64_t i = 0; i < n; ++i) {
    tok[i] = i == 0 ? "<unk>" : id_to_token(i);
    vocab[tok[i]] = i;
  }
  std::unordered_map<std::string, std::int64_t> index;
  for (std::int64_t i = 0; i < n; ++i) index.emplace(tok[i], i);
  // transformers' SentencePieceExtractor: every split of a piece into two pieces is a merge,
  // ranked by the piece's score (highest first), ties in vocabulary order.
  struct MergeRow {
    std::string l, r;
    float score;
    std::int64_t il, ir;
  };
  std::vector<MergeRow> merges;
  for (std::int64_t i = 3; i < n; ++i) {
    const std::string& piece = tok[i];
    std::vector<MergeRow> local;
    auto units = utf8_units(piece);
    std::size_t off = 0;
    for (std::size_t k = 0; k + 1 < units.size(); ++k) {
      off += units[k].size();
      auto l = index.find(piece.substr(0, off)), r = index.find(piece.substr(off));
      if (l != index.end() && r != index.end()) {
        local.push_back({l->first, r->first, scores_[i], l->second, r->second});
      }
    }
    std::sort(local.begin(), local.end(), [](const MergeRow& a, const MergeRow& b) {
      return std::tie(a.il, a.ir) < std::tie(b.il, b.ir);
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(),
                   [](const MergeRow& a, const MergeRow& b) { return a.score > b.score; });
  Json merge_list = Json::array();
  for (const auto& m : merges) merge_list.push_back(Json::array({m.l, m.r}));

  const std::string meta = "\xE2\x96\x81";  // ▁
  auto added = [](std::int64_t id, const char* content) {
    return Json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  Json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", meta}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", meta}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
                  {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", meta}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merge_list}}}};
  return j.dump(2) + "\n";
}

}  // namespace lethe::text

#include "text/hf_tokenizer.h"

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "text/unicode.h"

namespace lethe::text {

void HfTokenizer::Trie::insert(const std::string& s, std::int32_t token) {
  std::int32_t n = 0;
  for (unsigned char c : s) {
    auto it = nodes[n].next.find(c);
    if (it == nodes[n].next.end()) {
      nodes.push_back(Node{});
      const auto id = static_cast<std::int32_t>(nodes.size() - 1);
      nodes[n].next.emplace(c, id);
      n = id;
    } else {
      n = it->second;
    }
  }
  if (nodes[n].token < 0) nodes[n].token = token;
  first[static_cast<unsigned char>(s[0])] = true;
}

HfTokenizer::HfTokenizer(const std::string& text, const std::string& source) {
  json_named(source, [&] { build(text, source); });
}

void HfTokenizer::build(const std::string& text, const std::string& source) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    fail(source, ": not valid JSON (", e.what(), ")");
  }
  LETHE_CHECK(j.is_object(), source, ": a tokenizer.json must be a JSON object");
  LETHE_CHECK(j.contains("model") && !j["model"].is_null(), source, ": missing field 'model'");
  model_ = std::make_unique<BpeModel>(j["model"], source + ": model");
  auto stage = [&](const char* key) -> const Json* {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  };
  if (auto* n = stage("normalizer")) normalizer_ = make_normalizer(*n, source + ": normalizer");
  if (auto* p = stage("pre_tokenizer")) pre_tokenizer_ = make_pre_tokenizer(*p, source + ": pre_tokenizer");
  if (auto* p = stage("post_processor")) post_processor_ = make_post_processor(*p, source + ": post_processor");
  if (auto* d = stage("decoder")) decoder_ = make_decoder(*d, source + ": decoder");

  if (auto* a = stage("added_tokens")) {
    LETHE_CHECK(a->is_array(), source, ": 'added_tokens' must be an array");
    for (std::size_t i = 0; i < a->size(); ++i) {
      const Json& t = (*a)[i];
      const std::string w = source + ": added_tokens[" + std::to_string(i) + "]";
      LETHE_CHECK(t.is_object() && t.contains("id") && t["id"].is_number_integer() &&
                      t.contains("content") && t["content"].is_string(),
                  w, ": needs integer 'id' and string 'content'");
      auto flag = [&](const char* k, bool d) {
        return t.contains(k) && t[k].is_boolean() ? t[k].get<bool>() : d;
      };
      Added ad;
      ad.text = t["content"].get<std::string>();
      ad.id = t["id"].get<std::int64_t>();
      LETHE_CHECK(ad.id >= 0 && !ad.text.empty(), w, ": invalid id or empty content");
      ad.single_word = flag("single_word", false);
      ad.lstrip = flag("lstrip", false);
      ad.rstrip = flag("rstrip", false);
      ad.normalized = flag("normalized", true);
      ad.special = flag("special", false);
      ad.content = ad.normalized && normalizer_ ? normalizer_->apply(ad.text) : ad.text;
      if (ad.content.empty()) ad.content = ad.text;
      const auto idx = static_cast<std::int32_t>(added_.size());
      (ad.normalized ? normalized_trie_ : raw_trie_).insert(ad.content, idx);
      added_by_text_.emplace(ad.text, ad.id);
      added_by_id_.emplace(ad.id, added_.size());
      added_.push_back(std::move(ad));
    }
  }
}

std::vector<HfTokenizer::Match> HfTokenizer::find_added(std::string_view s, const Trie& trie) const {
  std::vector<Match> out;
  if (trie.nodes.size() == 1) return out;
  std::size_t done = 0;  // end of the previous match
  std::size_t i = 0;
  while (i < s.size()) {
    if (!trie.first[static_cast<unsigned char>(s[i])]) {
      ++i;
      continue;
    }
    std::int32_t n = 0, best = -1;
    std::size_t best_end = 0;
    for (std::size_t k = i; k < s.size(); ++k) {
      auto it = trie.nodes[n].next.find(static_cast<unsigned char>(s[k]));
      if (it == trie.nodes[n].next.end()) break;
      n = it->second;
      if (trie.nodes[n].token >= 0) {
        best = trie.nodes[n].token;
        best_end = k + 1;
      }
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const Added& a = added_[static_cast<std::size_t>(best)];
    std::size_t b = i, e = best_end;
    if (a.single_word) {
      auto word_before = [&] {
        std::size_t k = b;
        while (k > 0 && (static_cast<unsigned char>(s[k - 1]) & 0xC0) == 0x80) --k;
        if (k == 0 && b == 0) return false;
        if (k > 0) --k;
        while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        return utf8_valid_length(s, k) > 0 && is_word_char(utf8_decode_at(s, k));
      };
      auto word_after = [&] {
        return e < s.size() && utf8_valid_length(s, e) > 0 && is_word_char(utf8_decode_at(s, e));
      };
      if ((b > 0 && word_before()) || word_after()) {
        i = e;  // as `tokenizers`: the rejected match is left as text
        continue;
      }
    }
    if (a.lstrip) {
      std::size_t nb = b;
      while (nb > done) {
        std::size_t k = nb - 1;
        while (k > done && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        if (utf8_valid_length(s, k) == 0 || !is_whitespace(utf8_decode_at(s, k))) break;
        nb = k;
      }
      b = nb;
    }
    if (a.rstrip) {
      while (e < s.size()) {
        const std::size_t n2 = utf8_valid_length(s, e);
        if (n2 == 0 || !is_whitespace(utf8_decode_at(s, e))) break;
        e += n2;
      }
    }
    out.push_back(Match{b, e, best});
    done = e;
    i = e;
  }
  return out;
}

void HfTokenizer::encode_segment(std::string_view text, bool at_start,
                                 std::vector<std::int64_t>& ids) const {
  Pieces pieces{Piece{std::string(text), at_start}};
  if (pre_tokenizer_) pre_tokenizer_->apply(pieces);
  for (const auto& p : pieces) model_->tokenize(p.text, ids);
}

std::vector<std::int64_t> HfTokenizer::encode_valid(std::string_view text, bool add_special_tokens) const {
  std::vector<std::int64_t> ids;
  // 1. tokens matched on the raw text; 2. normalize what lies between; 3. tokens matched on
  // the normalized text; 4. pre-tokenize and run the model on the rest.
  auto encode_gap = [&](std::string_view gap, bool at_start) {
    if (gap.empty()) return;
    const std::string norm = normalizer_ ? normalizer_->apply(std::string(gap)) : std::string(gap);
    std::size_t last = 0;
    for (const Match& m : find_added(norm, normalized_trie_)) {
      if (m.begin > last) encode_segment(std::string_view(norm).substr(last, m.begin - last), at_start && last == 0, ids);
      ids.push_back(added_[static_cast<std::size_t>(m.token)].id);
      last = m.end;
    }
    if (last < norm.size()) encode_segment(std::string_view(norm).substr(last), at_start && last == 0, ids);
  };
  std::size_t last = 0;
  for (const Match& m : find_added(text, raw_trie_)) {
    if (m.begin > last) encode_gap(text.substr(last, m.begin - last), last == 0);
    ids.push_back(added_[static_cast<std::size_t>(m.token)].id);
    last = m.end;
  }
  if (last < text.size()) encode_gap(text.substr(last), last == 0);
  if (add_special_tokens && post_processor_) post_processor_->apply(ids);
  return ids;
}

std::string HfTokenizer::decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (auto id : ids) {
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) {
      const Added& a = added_[it->second];
      if (!(skip_special_tokens && a.special)) tokens.push_back(a.text);
      continue;
    }
    const std::string& t = model_->id_to_token(id);
    if (!t.empty()) tokens.push_back(t);
  }
  std::string out;
  if (decoder_) {
    decoder_->apply(tokens);
    for (const auto& t : tokens) out += t;
  } else {
    for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
  }
  return clean_up_ ? clean_up_tokenization(std::move(out)) : out;
}

std::string HfTokenizer::id_to_token(std::int64_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return added_[it->second].text;
  return model_->id_to_token(id);
}

std::optional<std::int64_t> HfTokenizer::token_to_id(std::string_view token) const {
  auto it = added_by_text_.find(token);
  if (it != added_by_text_.end()) return it->second;
  return model_->token_to_id(token);
}

std::int64_t HfTokenizer::vocab_size() const {
  std::int64_t n = model_->size();
  for (const auto& a : added_) n = std::max(n, a.id + 1);
  return n;
}

bool HfTokenizer::is_special(std::int64_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_[it->second].special;
}

void HfTokenizer::set_bos_eos(std::optional<std::int64_t> bos, std::optional<std::int64_t> eos) {
  std::vector<std::int64_t> before, after;
  if (bos) before.push_back(*bos);
  if (eos) after.push_back(*eos);
  post_processor_ = make_bos_eos_processor(std::move(before), std::move(after));
}

}  // namespace lethe::text

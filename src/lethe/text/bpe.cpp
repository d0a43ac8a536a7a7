#include "text/bpe.h"

#include <queue>

#include "lethe/core/error.h"
#include "text/unicode.h"

namespace lethe::text {
namespace {
constexpr std::size_t kCacheWordBytes = 256;     // longer words are not cached
constexpr std::size_t kCacheShardEntries = 16384;

std::uint64_t pair_key(std::int64_t a, std::int64_t b) {
  return (static_cast<std::uint64_t>(a) << 32) | static_cast<std::uint32_t>(b);
}

const std::string kEmpty;
}  // namespace

BpeModel::BpeModel(const Json& m, const std::string& where) {
  LETHE_CHECK(m.is_object(), where, ": 'model' must be an object");
  const std::string type = json_optional<std::string>(m, "type", "BPE", where);
  LETHE_CHECK(type == "BPE", where, ": unsupported model type '", type,
              "' (lethe supports BPE; WordPiece, Unigram and WordLevel are not supported)");
  auto text_field = [&](const char* key) {
    auto it = m.find(key);
    if (it == m.end() || it->is_null()) return std::string();
    LETHE_CHECK(it->is_string(), where, ": '", key, "' must be a string");
    return it->get<std::string>();
  };
  LETHE_CHECK(text_field("continuing_subword_prefix").empty() && text_field("end_of_word_suffix").empty(),
              where, ": continuing_subword_prefix / end_of_word_suffix are not supported");
  if (m.contains("dropout") && !m["dropout"].is_null()) {
    LETHE_CHECK(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0, where,
                ": BPE dropout changes tokenization at random; lethe refuses it");
  }
  auto flag = [&](const char* key) {
    auto it = m.find(key);
    if (it == m.end() || it->is_null()) return false;
    LETHE_CHECK(it->is_boolean(), where, ": '", key, "' must be true or false");
    return it->get<bool>();
  };
  byte_fallback_ = flag("byte_fallback");
  ignore_merges_ = flag("ignore_merges");
  fuse_unk_ = flag("fuse_unk");

  auto vit = m.find("vocab");
  LETHE_CHECK(vit != m.end() && vit->is_object(), where, ": missing object 'vocab'");
  std::int64_t max_id = -1;
  for (const auto& [tok, id] : vit->items()) {
    LETHE_CHECK(id.is_number_integer() && id.get<std::int64_t>() >= 0 &&
                    id.get<std::int64_t>() < (std::int64_t{1} << 31),
                where, ": vocab['", tok, "'] must be a non-negative integer id");
    vocab_.emplace(tok, id.get<std::int64_t>());
    max_id = std::max(max_id, id.get<std::int64_t>());
  }
  id_to_token_.assign(static_cast<std::size_t>(max_id + 1), std::string());
  for (const auto& [tok, id] : vocab_) id_to_token_[static_cast<std::size_t>(id)] = tok;

  const std::string unk = text_field("unk_token");
  if (!unk.empty()) {
    auto it = vocab_.find(unk);
    LETHE_CHECK(it != vocab_.end(), where, ": unk_token '", unk, "' is not in the vocab");
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    static const char* hex = "0123456789ABCDEF";
    const std::string t = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    auto it = vocab_.find(t);
    byte_ids_[b] = it == vocab_.end() ? -1 : static_cast<std::int32_t>(it->second);
  }

  auto mit = m.find("merges");
  LETHE_CHECK(mit != m.end() && mit->is_array(), where, ": missing array 'merges'");
  merges_.reserve(mit->size());
  std::int32_t rank = 0;
  for (const auto& e : *mit) {
    std::string a, b;
    const std::string w = where + ": merges[" + std::to_string(rank) + "]";
    if (e.is_string()) {
      const auto s = e.get<std::string>();
      const auto sp = s.find(' ');
      LETHE_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, w,
                  ": '", s, "' must be two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      LETHE_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), w,
                  ": must be \"a b\" or [\"a\", \"b\"], got ", e.dump());
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
    LETHE_CHECK(ia != vocab_.end() && ib != vocab_.end(), w, ": '", a, "' or '", b,
                "' is not in the vocab");
    LETHE_CHECK(iab != vocab_.end(), w, ": the merged token '", a + b, "' is not in the vocab");
    merges_.try_emplace(pair_key(ia->second, ib->second), rank, static_cast<std::int32_t>(iab->second));
    ++rank;
  }
}

std::optional<std::int64_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string& BpeModel::id_to_token(std::int64_t id) const {
  if (id < 0 || id >= size()) return kEmpty;
  return id_to_token_[static_cast<std::size_t>(id)];
}

void BpeModel::tokenize(std::string_view word, std::vector<std::int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (word.size() > kCacheWordBytes) {
    merge_word(word, out);
    return;
  }
  Shard& shard = cache_[std::hash<std::string_view>{}(word) % cache_.size()];
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(word);
    if (it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int64_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(shard.mu);
  if (shard.map.size() >= kCacheShardEntries) shard.map.clear();
  shard.map.emplace(std::string(word), std::move(ids));
}

void BpeModel::merge_word(std::string_view word, std::vector<std::int64_t>& out) const {
  struct Symbol {
    std::int32_t id;
    std::int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  bool last_unk = false;
  auto push = [&](std::int32_t id) {
    const auto n = static_cast<std::int32_t>(sym.size());
    sym.push_back({id, n - 1, n + 1, true});
  };
  for (std::size_t i = 0; i < word.size();) {
    std::size_t n = utf8_valid_length(word, i);
    if (n == 0) n = 1;
    const std::string_view unit = word.substr(i, n);
    i += n;
    auto it = vocab_.find(unit);
    if (it != vocab_.end()) {
      push(static_cast<std::int32_t>(it->second));
      last_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : unit) all &= byte_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : unit) push(byte_ids_[c]);
        last_unk = false;
        continue;
      }
    }
    if (unk_id_) {
      if (!(fuse_unk_ && last_unk)) push(static_cast<std::int32_t>(*unk_id_));
      last_unk = true;
    }
    // Without an unk token, an unknown unit is dropped (as in `tokenizers`).
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  // (rank, position, merged id): lowest rank first, then leftmost.
  using Cand = std::tuple<std::int32_t, std::int32_t, std::int32_t>;
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  auto consider = [&](std::int32_t pos) {
    if (pos < 0) return;
    const std::int32_t nx = sym[pos].next;
    if (nx < 0) return;
    auto it = merges_.find(pair_key(sym[pos].id, sym[nx].id));
    if (it != merges_.end()) heap.emplace(it->second.first, pos, it->second.second);
  };
  for (std::int32_t p = 0; p + 1 < static_cast<std::int32_t>(sym.size()); ++p) consider(p);
  while (!heap.empty()) {
    auto [rank, pos, new_id] = heap.top();
    heap.pop();
    Symbol& s = sym[pos];
    if (!s.alive || s.next < 0) continue;
    auto it = merges_.find(pair_key(s.id, sym[s.next].id));
    if (it == merges_.end() || it->second.first != rank) continue;  // stale candidate
    Symbol& right = sym[s.next];
    right.alive = false;
    s.id = new_id;
    s.next = right.next;
    if (s.next >= 0) sym[s.next].prev = pos;
    consider(s.prev);
    consider(pos);
  }
  for (std::int32_t p = 0; p >= 0; p = sym[p].next) out.push_back(sym[p].id);
}

}  // namespace lethe::text

// Normalizers, pre-tokenizers, post-processors and decoders of tokenizer.json, following the
// `tokenizers` library's semantics (see docs/tokenizers.md for the supported set).
#include <algorithm>

#include "lethe/core/error.h"
#include "text/hf_pipeline.h"
#include "text/regex.h"
#include "text/unicode.h"

namespace lethe::text {
namespace {

using Ranges = std::vector<std::pair<std::size_t, std::size_t>>;

std::string type_of(const Json& j, const std::string& where) {
  LETHE_CHECK(j.is_object(), where, ": expected an object, got ", j.dump());
  auto it = j.find("type");
  LETHE_CHECK(it != j.end() && it->is_string(), where, ": missing string field 'type'");
  return it->get<std::string>();
}

const Json& array_field(const Json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  LETHE_CHECK(it != j.end() && it->is_array(), where, ": missing array field '", key, "'");
  return *it;
}

std::string string_field(const Json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  LETHE_CHECK(it != j.end() && it->is_string(), where, ": missing string field '", key, "'");
  return it->get<std::string>();
}

bool bool_field(const Json& j, const char* key, bool fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  LETHE_CHECK(it->is_boolean(), where, ": field '", key, "' must be true or false");
  return it->get<bool>();
}

// {"String": "x"} or {"Regex": "..."}: a regex either way (strings escaped).
std::unique_ptr<Regex> pattern_field(const Json& j, const std::string& where) {
  auto it = j.find("pattern");
  LETHE_CHECK(it != j.end() && it->is_object() && it->size() == 1, where,
              ": 'pattern' must be {\"String\": ...} or {\"Regex\": ...}");
  if (it->contains("String") && (*it)["String"].is_string()) {
    return std::make_unique<Regex>(regex_escape((*it)["String"].get<std::string>()),
                                   where + ".pattern");
  }
  if (it->contains("Regex") && (*it)["Regex"].is_string()) {
    return std::make_unique<Regex>((*it)["Regex"].get<std::string>(), where + ".pattern");
  }
  fail(where, ": 'pattern' must be {\"String\": ...} or {\"Regex\": ...}, got ", it->dump());
}

std::string replace_all(std::string_view s, const Regex& re, const std::string& with) {
  std::string out;
  std::size_t last = 0;
  for (auto [b, e] : re.find_all(s)) {
    out.append(s.substr(last, b - last));
    out += with;
    last = e;
  }
  out.append(s.substr(last));
  return out;
}

// Per-unit predicate matches (each matching code point is its own match, as in `tokenizers`).
template <typename Pred>
Ranges char_matches(std::string_view s, Pred pred) {
  Ranges out;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_valid_length(s, i);
    if (n == 0) {
      ++i;
      continue;
    }
    if (pred(utf8_decode_at(s, i))) out.emplace_back(i, i + n);
    i += n;
  }
  return out;
}

// Applies a split to every piece; the first sub-piece inherits at_start.
template <typename Fn>
void split_pieces(Pieces& pieces, Fn&& split_one) {
  Pieces out;
  out.reserve(pieces.size());
  for (auto& p : pieces) {
    std::vector<std::string> parts = split_one(p.text);
    bool first = true;
    for (auto& part : parts) {
      out.push_back(Piece{std::move(part), p.at_start && first});
      first = false;
    }
  }
  pieces.swap(out);
}

// ---- normalizers -------------------------------------------------------------------------------

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm f) : form_(f) {}
  std::string apply(std::string s) const override { return normalize(s, form_); }

 private:
  NormalForm form_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  std::string apply(std::string s) const override { return lowercase(s); }
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(const Json& j, const std::string& where)
      : re_(pattern_field(j, where)), content_(string_field(j, "content", where)) {}
  std::string apply(std::string s) const override { return replace_all(s, *re_, content_); }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prepend_(std::move(p)) {}
  std::string apply(std::string s) const override { return s.empty() ? s : prepend_ + s; }

 private:
  std::string prepend_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string apply(std::string s) const override {
    auto units = utf8_units(s);
    std::size_t b = 0, e = units.size();
    auto ws = [&](std::size_t k) {
      return utf8_valid_length(units[k], 0) > 0 && is_whitespace(utf8_decode_at(units[k], 0));
    };
    if (left_)
      while (b < e && ws(b)) ++b;
    if (right_)
      while (e > b && ws(e - 1)) --e;
    std::string out;
    for (std::size_t k = b; k < e; ++k) out.append(units[k]);
    return out;
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  std::string apply(std::string s) const override {
    for (const auto& p : parts_) s = p->apply(std::move(s));
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// ---- pre-tokenizers ----------------------------------------------------------------------------

// GPT-2's pattern, used by ByteLevel with use_regex.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string to_byte_level(std::string_view s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) out += byte_to_unicode(c);
  return out;
}

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(const Json& j, const std::string& where)
      : add_prefix_space_(bool_field(j, "add_prefix_space", true, where)),
        use_regex_(bool_field(j, "use_regex", true, where)) {
    if (use_regex_) re_ = std::make_unique<Regex>(kGpt2Pattern, where);
  }
  void apply(Pieces& pieces) const override {
    for (auto& p : pieces)
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
    if (use_regex_) {
      split_pieces(pieces, [&](const std::string& s) {
        return split_by(s, re_->find_all(s), SplitBehavior::kIsolated);
      });
    }
    for (auto& p : pieces) p.text = to_byte_level(p.text);
  }

 private:
  bool add_prefix_space_, use_regex_;
  std::unique_ptr<Regex> re_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const Json& j, const std::string& where)
      : re_(pattern_field(j, where)),
        behavior_(parse_split_behavior(j.contains("behavior") ? j["behavior"] : Json(), where)),
        invert_(bool_field(j, "invert", false, where)) {}
  void apply(Pieces& pieces) const override {
    split_pieces(pieces, [&](const std::string& s) {
      return split_by(s, re_->find_all(s), behavior_, invert_);
    });
  }

 private:
  std::unique_ptr<Regex> re_;
  SplitBehavior behavior_;
  bool invert_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

PrependScheme parse_prepend_scheme(const Json& j, const std::string& where) {
  auto it = j.find("prepend_scheme");
  if (it != j.end() && !it->is_null()) {
    LETHE_CHECK(it->is_string(), where, ": 'prepend_scheme' must be a string");
    const auto v = it->get<std::string>();
    if (v == "always") return PrependScheme::kAlways;
    if (v == "first") return PrependScheme::kFirst;
    if (v == "never") return PrependScheme::kNever;
    fail(where, ": unknown prepend_scheme '", v, "' (always, first, never)");
  }
  // Files written before prepend_scheme existed carry add_prefix_space.
  return bool_field(j, "add_prefix_space", true, where) ? PrependScheme::kAlways
                                                         : PrependScheme::kNever;
}

std::string replacement_field(const Json& j, const std::string& where) {
  const std::string r = string_field(j, "replacement", where);
  LETHE_CHECK(!r.empty() && utf8_valid_length(r, 0) == r.size(), where,
              ": 'replacement' must be one character, got '", r, "'");
  return r;
}

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(const Json& j, const std::string& where)
      : replacement_(replacement_field(j, where)),
        scheme_(parse_prepend_scheme(j, where)),
        split_(bool_field(j, "split", true, where)),
        re_(regex_escape(replacement_), where) {}
  void apply(Pieces& pieces) const override {
    for (auto& p : pieces) {
      std::string s;
      s.reserve(p.text.size() + 3);
      for (char c : p.text) {
        if (c == ' ')
          s += replacement_;
        else
          s += c;
      }
      const bool starts = s.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && p.at_start))) {
        s.insert(0, replacement_);
      }
      p.text = std::move(s);
    }
    if (split_) {
      split_pieces(pieces, [&](const std::string& s) {
        return split_by(s, re_.find_all(s), SplitBehavior::kMergedWithNext);
      });
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  Regex re_;
};

class DigitsPreTokenizer : public PreTokenizer {
 public:
  DigitsPreTokenizer(const Json& j, const std::string& where)
      : individual_(bool_field(j, "individual_digits", false, where)) {}
  void apply(Pieces& pieces) const override {
    split_pieces(pieces, [&](const std::string& s) {
      return split_by(s, char_matches(s, is_numeric),
                      individual_ ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
    });
  }


 private:
  bool individual_;
};

class PunctuationPreTokenizer : public PreTokenizer {
 public:
  PunctuationPreTokenizer(const Json& j, const std::string& where)
      : behavior_(parse_split_behavior(j.contains("behavior") ? j["behavior"] : Json("Isolated"), where)) {}
  void apply(Pieces& pieces) const override {
    split_pieces(pieces, [&](const std::string& s) {
      return split_by(s, char_matches(s, is_punctuation), behavior_);
    });
  }

 private:
  SplitBehavior behavior_;
};

class WhitespacePreTokenizer : public PreTokenizer {
 public:
  explicit WhitespacePreTokenizer(const std::string& where) : re_(R"(\w+|[^\w\s]+)", where) {}
  void apply(Pieces& pieces) const override {
    split_pieces(pieces, [&](const std::string& s) {
      return split_by(s, re_.find_all(s), SplitBehavior::kRemoved, /*invert=*/true);
    });
  }

 private:
  Regex re_;
};

class WhitespaceSplitPreTokenizer : public PreTokenizer {
 public:
  void apply(Pieces& pieces) const override {
    split_pieces(pieces, [&](const std::string& s) {
      return split_by(s, char_matches(s, is_whitespace), SplitBehavior::kRemoved);
    });
  }
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void apply(Pieces& pieces) const override {
    for (const auto& p : parts_) p->apply(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

// ---- post-processors ---------------------------------------------------------------------------

class TemplateProcessor : public PostProcessor {
 public:
  TemplateProcessor(std::vector<std::int64_t> before, std::vector<std::int64_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void apply(std::vector<std::int64_t>& ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }

 private:
  std::vector<std::int64_t> before_, after_;
};

std::unique_ptr<PostProcessor> make_template(const Json& j, const std::string& where) {
  const Json& single = array_field(j, "single", where);
  const Json specials = j.contains("special_tokens") ? j["special_tokens"] : Json::object();
  LETHE_CHECK(specials.is_object(), where, ": 'special_tokens' must be an object");
  std::vector<std::int64_t> before, after;
  bool seen_a = false;
  for (std::size_t i = 0; i < single.size(); ++i) {
    const std::string w = where + ".single[" + std::to_string(i) + "]";
    const Json& item = single[i];
    if (item.contains("Sequence")) {
      LETHE_CHECK(!seen_a, w, ": the single template holds $A twice");
      seen_a = true;
      continue;
    }
    LETHE_CHECK(item.contains("SpecialToken") && item["SpecialToken"].contains("id"), w,
                ": expected {\"SpecialToken\": {...}} or {\"Sequence\": {...}}");
    const std::string name = item["SpecialToken"]["id"].get<std::string>();
    LETHE_CHECK(specials.contains(name) && specials[name].contains("ids") &&
                    specials[name]["ids"].is_array(),
                w, ": special token '", name, "' is not defined in special_tokens");
    for (const auto& id : specials[name]["ids"]) {
      LETHE_CHECK(id.is_number_integer(), w, ": ids of '", name, "' must be integers");
      (seen_a ? after : before).push_back(id.get<std::int64_t>());
    }
  }
  LETHE_CHECK(seen_a, where, ": the single template has no $A sequence");
  return std::make_unique<TemplateProcessor>(std::move(before), std::move(after));
}

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  void apply(std::vector<std::int64_t>& ids) const override {
    for (const auto& p : parts_) p->apply(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

class NoopProcessor : public PostProcessor {
 public:
  void apply(std::vector<std::int64_t>&) const override {}
};

// ---- decoders ----------------------------------------------------------------------------------

class ByteLevelDecoder : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      std::string tb;
      bool ok = true;
      for (std::size_t i = 0; i < t.size();) {
        const std::size_t n = utf8_valid_length(t, i);
        const int b = n == 0 ? -1 : unicode_to_byte(utf8_decode_at(t, i));
        if (b < 0) {
          ok = false;
          break;
        }
        tb += static_cast<char>(b);
        i += n;
      }
      bytes += ok ? tb : t;  // tokens outside the byte alphabet pass through (as `tokenizers`)
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(const Json& j, const std::string& where)
      : replacement_(replacement_field(j, where)), scheme_(parse_prepend_scheme(j, where)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (std::size_t k = 0; k < t.size();) {
        if (t.compare(k, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && scheme_ != PrependScheme::kNever)) out += ' ';
          k += replacement_.size();
        } else {
          out += t[k++];
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
};

int parse_byte_token(const std::string& t) {
  // "<0xAB>"
  if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

class ByteFallbackDecoder : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    std::size_t pending_count = 0;
    auto flush = [&] {
      if (pending_count == 0) return;
      if (utf8_is_valid(pending)) {
        out.push_back(pending);
      } else {
        for (std::size_t i = 0; i < pending_count; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& t : tokens) {
      const int b = parse_byte_token(t);
      if (b >= 0) {
        pending += static_cast<char>(b);
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, all);
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(const Json& j, const std::string& where) : content_(string_field(j, "content", where)) {
    LETHE_CHECK(!content_.empty() && utf8_valid_length(content_, 0) == content_.size(), where,
                ": 'content' must be one character");
    auto num = [&](const char* k) {
      LETHE_CHECK(j.contains(k) && j[k].is_number_integer() && j[k].get<std::int64_t>() >= 0,
                  where, ": field '", k, "' must be a non-negative integer");
      return j[k].get<std::size_t>();
    };
    start_ = num("start");
    stop_ = num("stop");
  }
  void apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::size_t b = 0, e = t.size();
      for (std::size_t i = 0; i < start_ && t.compare(b, content_.size(), content_) == 0; ++i) b += content_.size();
      for (std::size_t i = 0; i < stop_ && e >= b + content_.size() &&
                              t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  std::size_t start_ = 0, stop_ = 0;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const Json& j, const std::string& where)
      : re_(pattern_field(j, where)), content_(string_field(j, "content", where)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = replace_all(t, *re_, content_);
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->apply(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

template <typename T, typename Make>
std::vector<std::unique_ptr<T>> make_all(const Json& j, const char* key, const std::string& where,
                                         Make make) {
  std::vector<std::unique_ptr<T>> parts;
  const Json& arr = array_field(j, key, where);
  for (std::size_t i = 0; i < arr.size(); ++i) {
    parts.push_back(make(arr[i], where + "." + key + "[" + std::to_string(i) + "]"));
  }
  return parts;
}

[[noreturn]] void unsupported(const std::string& where, const std::string& kind,
                              const std::string& type, const char* supported) {
  fail(where, ": unsupported ", kind, " type '", type, "' (lethe supports: ", supported, ")");
}

}  // namespace

SplitBehavior parse_split_behavior(const Json& v, const std::string& where) {
  LETHE_CHECK(v.is_string(), where, ": 'behavior' must be a string");
  const auto b = v.get<std::string>();
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  fail(where, ": unknown split behavior '", b,
       "' (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
}

std::vector<std::string> split_by(std::string_view s, const Ranges& matches,
                                  SplitBehavior behavior, bool invert) {
  // (range, is_delimiter) covering all of s.
  struct Part {
    std::size_t b, e;
    bool match;
  };
  std::vector<Part> parts;
  std::size_t last = 0;
  for (auto [b, e] : matches) {
    if (b > last) parts.push_back({last, b, invert});
    parts.push_back({b, e, !invert});
    last = e;
  }
  if (last < s.size()) parts.push_back({last, s.size(), invert});

  std::vector<Part> out;
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& p : parts)
        if (!p.match) out.push_back(p);
      break;
    case SplitBehavior::kIsolated:
      out = parts;
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& p : parts) {
        if (p.match && !prev_match && !out.empty())
          out.back().e = p.e;
        else
          out.push_back(p);
        prev_match = p.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !prev_match && !out.empty())
          out.back().b = it->b;
        else
          out.push_back(*it);
        prev_match = it->match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::kContiguous:
      for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i > 0 && parts[i].match == prev_match && !out.empty())
          out.back().e = parts[i].e;
        else
          out.push_back(parts[i]);
        prev_match = parts[i].match;
      }
      break;
  }
  std::vector<std::string> pieces;
  pieces.reserve(out.size());
  for (const auto& p : out)
    if (p.e > p.b) pieces.emplace_back(s.substr(p.b, p.e - p.b));
  return pieces;
}

std::unique_ptr<Normalizer> make_normalizer(const Json& j, const std::string& where) {
  const std::string t = type_of(j, where);
  if (t == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFC);
  if (t == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFD);
  if (t == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFKC);
  if (t == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFKD);
  if (t == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (t == "Replace") return std::make_unique<ReplaceNormalizer>(j, where);
  if (t == "Prepend") return std::make_unique<PrependNormalizer>(string_field(j, "prepend", where));
  if (t == "Strip")
    return std::make_unique<StripNormalizer>(bool_field(j, "strip_left", true, where),
                                             bool_field(j, "strip_right", true, where));
  if (t == "Sequence")
    return std::make_unique<SequenceNormalizer>(
        make_all<Normalizer>(j, "normalizers", where, make_normalizer));
  unsupported(where, "normalizer", t, "NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, Sequence");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const std::string& where) {
  const std::string t = type_of(j, where);
  if (t == "ByteLevel") return std::make_unique<ByteLevelPreTokenizer>(j, where);
  if (t == "Split") return std::make_unique<SplitPreTokenizer>(j, where);
  if (t == "Metaspace") return std::make_unique<MetaspacePreTokenizer>(j, where);
  if (t == "Digits") return std::make_unique<DigitsPreTokenizer>(j, where);
  if (t == "Punctuation") return std::make_unique<PunctuationPreTokenizer>(j, where);
  if (t == "Whitespace") return std::make_unique<WhitespacePreTokenizer>(where);
  if (t == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (t == "Sequence")
    return std::make_unique<SequencePreTokenizer>(
        make_all<PreTokenizer>(j, "pretokenizers", where, make_pre_tokenizer));
  unsupported(where, "pre_tokenizer", t,
              "ByteLevel, Split, Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit, Sequence");
}

std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const std::string& where) {
  const std::string t = type_of(j, where);
  if (t == "TemplateProcessing") return make_template(j, where);
  if (t == "ByteLevel") return std::make_unique<NoopProcessor>();  // offsets only
  if (t == "Sequence")
    return std::make_unique<SequenceProcessor>(
        make_all<PostProcessor>(j, "processors", where, make_post_processor));
  unsupported(where, "post_processor", t, "TemplateProcessing, ByteLevel, Sequence");
}

std::unique_ptr<PostProcessor> make_bos_eos_processor(std::vector<std::int64_t> before,
                                                      std::vector<std::int64_t> after) {
  return std::make_unique<TemplateProcessor>(std::move(before), std::move(after));
}

std::unique_ptr<Decoder> make_decoder(const Json& j, const std::string& where) {
  const std::string t = type_of(j, where);
  if (t == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (t == "Metaspace") return std::make_unique<MetaspaceDecoder>(j, where);
  if (t == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (t == "Fuse") return std::make_unique<FuseDecoder>();
  if (t == "Strip") return std::make_unique<StripDecoder>(j, where);
  if (t == "Replace") return std::make_unique<ReplaceDecoder>(j, where);
  if (t == "Sequence")
    return std::make_unique<SequenceDecoder>(make_all<Decoder>(j, "decoders", where, make_decoder));
  unsupported(where, "decoder", t, "ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, Sequence");
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},   {" ?", "?"},   {" !", "!"},     {" ,", ","},   {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    const std::string f = from, t = to;
    std::string out;
    std::size_t pos = 0, hit;
    while ((hit = text.find(f, pos)) != std::string::npos) {
      out.append(text, pos, hit - pos);
      out += t;
      pos = hit + f.size();
    }
    out.append(text, pos);
    text.swap(out);
  }
  return text;
}

}  // namespace lethe::text

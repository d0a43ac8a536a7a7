#include "lethe/eval/rouge.h"

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_map>

namespace lethe::eval {
namespace {

// ---- NLTK Porter stemmer, NLTK_EXTENSIONS mode ---------------------------------------------
// The rule tables are Porter (1980) with NLTK's changes: the irregular-forms pool, words of
// length <= 2 left alone, 'ies'/'ied' -> 'ie' for 4-letter words, y -> i only after a consonant
// that is not the whole stem, 'alli' handled first in step 2, 'fulli' and 'logi' rules, and
// the two-letter vowel-consonant case of *o. A matching suffix whose condition fails ends the
// step (later rules are not tried), as in the original C code.

bool is_consonant(const std::string& w, std::size_t i) {
  switch (w[i]) {
    case 'a': case 'e': case 'i': case 'o': case 'u': return false;
    case 'y': return i == 0 ? true : !is_consonant(w, i - 1);
    default: return true;
  }
}

// m: the number of VC sequences.
int measure(const std::string& stem) {
  int m = 0;
  for (std::size_t i = 0; i + 1 < stem.size(); ++i) {
    if (!is_consonant(stem, i) && is_consonant(stem, i + 1)) ++m;
  }
  return m;
}

bool contains_vowel(const std::string& stem) {
  for (std::size_t i = 0; i < stem.size(); ++i) {
    if (!is_consonant(stem, i)) return true;
  }
  return false;
}

bool ends_double_consonant(const std::string& w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

bool ends_cvc(const std::string& w) {
  const std::size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) &&
      w[n - 1] != 'w' && w[n - 1] != 'x' && w[n - 1] != 'y') {
    return true;
  }
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

bool ends_with(const std::string& w, std::string_view s) {
  return w.size() >= s.size() && w.compare(w.size() - s.size(), s.size(), s) == 0;
}

using Condition = std::function<bool(const std::string& stem)>;
struct Rule {
  std::string_view suffix;  // "*d": a double consonant
  std::string replacement;
  Condition condition;      // empty: unconditional
};

std::string apply_rules(const std::string& w, const std::vector<Rule>& rules) {
  for (const auto& r : rules) {
    if (r.suffix == "*d") {
      if (!ends_double_consonant(w)) continue;
      const std::string stem = w.substr(0, w.size() - 2);
      return !r.condition || r.condition(stem) ? stem + r.replacement : w;
    }
    if (ends_with(w, r.suffix)) {
      const std::string stem = w.substr(0, w.size() - r.suffix.size());
      return !r.condition || r.condition(stem) ? stem + r.replacement : w;
    }
  }
  return w;
}

bool positive_measure(const std::string& s) { return measure(s) > 0; }
bool measure_gt_1(const std::string& s) { return measure(s) > 1; }

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return w.substr(0, 1) + "ie";
  return apply_rules(w, {{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}});
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return w.substr(0, w.size() - 3) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    const std::string stem = w.substr(0, w.size() - 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string stem;
  bool trimmed = false;
  for (std::string_view suffix : {std::string_view("ed"), std::string_view("ing")}) {
    if (ends_with(w, suffix)) {
      stem = w.substr(0, w.size() - suffix.size());
      if (contains_vowel(stem)) {
        trimmed = true;
        break;
      }
    }
  }
  if (!trimmed) return w;
  const char last = stem.back();
  return apply_rules(stem, {{"at", "ate", {}},
                            {"bl", "ble", {}},
                            {"iz", "ize", {}},
                            {"*d", std::string(1, last), [last](const std::string&) {
                               return last != 'l' && last != 's' && last != 'z';
                             }},
                            {"", "e", [](const std::string& s) { return measure(s) == 1 && ends_cvc(s); }}});
}

std::string step1c(const std::string& w) {
  return apply_rules(w, {{"y", "i", [](const std::string& s) {
                            return s.size() > 1 && is_consonant(s, s.size() - 1);
                          }}});
}

std::string step2(const std::string& w) {
  if (ends_with(w, "alli") && positive_measure(w.substr(0, w.size() - 4))) {
    return step2(w.substr(0, w.size() - 4) + "al");
  }
  const Condition pm = positive_measure;
  return apply_rules(w, {{"ational", "ate", pm}, {"tional", "tion", pm}, {"enci", "ence", pm},
                         {"anci", "ance", pm},   {"izer", "ize", pm},    {"bli", "ble", pm},
                         {"alli", "al", pm},     {"entli", "ent", pm},   {"eli", "e", pm},
                         {"ousli", "ous", pm},   {"ization", "ize", pm}, {"ation", "ate", pm},
                         {"ator", "ate", pm},    {"alism", "al", pm},    {"iveness", "ive", pm},
                         {"fulness", "ful", pm}, {"ousness", "ous", pm}, {"aliti", "al", pm},
                         {"iviti", "ive", pm},   {"biliti", "ble", pm},  {"fulli", "ful", pm},
                         // The 'l' of 'logi' stays with the stem for the measure (geo-, theo-).
                         {"logi", "log", [&w](const std::string&) {
                            return positive_measure(w.substr(0, w.size() - 3));
                          }}});
}

std::string step3(const std::string& w) {
  const Condition pm = positive_measure;
  return apply_rules(w, {{"icate", "ic", pm}, {"ative", "", pm}, {"alize", "al", pm}, {"iciti", "ic", pm},
                         {"ical", "ic", pm},  {"ful", "", pm},   {"ness", "", pm}});
}

std::string step4(const std::string& w) {
  const Condition m1 = measure_gt_1;
  return apply_rules(w, {{"al", "", m1},   {"ance", "", m1}, {"ence", "", m1}, {"er", "", m1},
                         {"ic", "", m1},   {"able", "", m1}, {"ible", "", m1}, {"ant", "", m1},
                         {"ement", "", m1}, {"ment", "", m1}, {"ent", "", m1},
                         {"ion", "", [](const std::string& s) {
                            return measure(s) > 1 && (s.back() == 's' || s.back() == 't');
                          }},
                         {"ou", "", m1},   {"ism", "", m1},  {"ate", "", m1},  {"iti", "", m1},
                         {"ous", "", m1},  {"ive", "", m1},  {"ize", "", m1}});
}

std::string step5a(const std::string& w) {
  if (ends_with(w, "e")) {
    const std::string stem = w.substr(0, w.size() - 1);
    const int m = measure(stem);
    if (m > 1) return stem;
    if (m == 1 && !ends_cvc(stem)) return stem;
  }
  return w;
}

std::string step5b(const std::string& w) {
  return apply_rules(w, {{"ll", "l", [&w](const std::string&) { return measure(w.substr(0, w.size() - 1)) > 1; }}});
}

const std::unordered_map<std::string, std::string>& irregular_forms() {
  static const std::unordered_map<std::string, std::string> pool = {
      {"sky", "sky"},         {"skies", "sky"},        {"dying", "die"},      {"lying", "lie"},
      {"tying", "tie"},       {"news", "news"},        {"innings", "inning"}, {"inning", "inning"},
      {"outings", "outing"},  {"outing", "outing"},    {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"},  {"exceed", "exceed"},  {"succeed", "succeed"}};
  return pool;
}

// ---- rouge_score ------------------------------------------------------------------------------

double fmeasure(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

std::size_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

RougeScore score_rouge1(const std::vector<std::string>& t, const std::vector<std::string>& p) {
  std::map<std::string, std::size_t> ct, cp;
  for (const auto& x : t) ++ct[x];
  for (const auto& x : p) ++cp[x];
  std::size_t overlap = 0;
  for (const auto& [k, n] : ct) {
    auto it = cp.find(k);
    if (it != cp.end()) overlap += std::min(n, it->second);
  }
  RougeScore s;
  s.precision = static_cast<double>(overlap) / static_cast<double>(std::max<std::size_t>(p.size(), 1));
  s.recall = static_cast<double>(overlap) / static_cast<double>(std::max<std::size_t>(t.size(), 1));
  s.f1 = fmeasure(s.precision, s.recall);
  return s;
}

RougeScore score_rouge_l(const std::vector<std::string>& t, const std::vector<std::string>& p) {
  RougeScore s;
  if (t.empty() || p.empty()) return s;
  const auto lcs = static_cast<double>(lcs_length(t, p));
  s.precision = lcs / static_cast<double>(p.size());
  s.recall = lcs / static_cast<double>(t.size());
  s.f1 = fmeasure(s.precision, s.recall);
  return s;
}

}  // namespace

std::string porter_stem(std::string_view word) {
  std::string w(word);
  if (auto it = irregular_forms().find(w); it != irregular_forms().end()) return it->second;
  if (w.size() <= 2) return w;
  w = step1a(w);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = step3(w);
  w = step4(w);
  w = step5a(w);
  return step5b(w);
}

std::vector<std::string> rouge_tokenize(std::string_view text, bool stem) {
  // Python's str.lower() then [^a-z0-9]+ -> " ". Only two non-ASCII characters lowercase to
  // ASCII letters: U+0130 (İ -> "i" + U+0307) and U+212A (Kelvin sign -> "k").
  std::string s;
  s.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      const char lc = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      s.push_back((lc >= 'a' && lc <= 'z') || (lc >= '0' && lc <= '9') ? lc : ' ');
    } else if (c == 0xC4 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0xB0) {
      s += "i ";
      ++i;
    } else if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x84 &&
               static_cast<unsigned char>(text[i + 2]) == 0xAA) {
      s.push_back('k');
      i += 2;
    } else {
      s.push_back(' ');
    }
  }
  std::vector<std::string> tokens;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t e = i;
    while (e < s.size() && s[e] != ' ') ++e;
    if (e > i) {
      std::string tok = s.substr(i, e - i);
      tokens.push_back(stem && tok.size() > 3 ? porter_stem(tok) : tok);
    }
    i = e;
  }
  return tokens;
}

RougePair rouge(std::string_view target, std::string_view prediction, bool stem) {
  const auto t = rouge_tokenize(target, stem), p = rouge_tokenize(prediction, stem);
  return {score_rouge1(t, p), score_rouge_l(t, p)};
}

RougeScore rouge1(std::string_view target, std::string_view prediction, bool stem) {
  return rouge(target, prediction, stem).rouge1;
}

RougeScore rouge_l(std::string_view target, std::string_view prediction, bool stem) {
  return rouge(target, prediction, stem).rouge_l;
}

}  // namespace lethe::eval

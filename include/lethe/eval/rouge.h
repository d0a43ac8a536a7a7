// ROUGE as Google's `rouge_score` package computes it (the implementation TOFU, OpenUnlearning
// and MUSE use): its tokenizer — lowercase, every character outside [a-z0-9] becomes a space —
// and, when asked, NLTK's Porter stemmer (default NLTK_EXTENSIONS mode) on tokens longer than 3
// characters. TOFU/OpenUnlearning stem; MUSE does not.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lethe::eval {

std::vector<std::string> rouge_tokenize(std::string_view text, bool stem);

// NLTK's PorterStemmer().stem(word) for a lowercase ASCII word.
std::string porter_stem(std::string_view word);

struct RougeScore {
  double precision = 0, recall = 0, f1 = 0;
};

// `target` is the reference (ground truth), `prediction` the generated text, as in
// rouge_scorer.RougeScorer.score(target, prediction).
RougeScore rouge1(std::string_view target, std::string_view prediction, bool stem);
RougeScore rouge_l(std::string_view target, std::string_view prediction, bool stem);
// Both from one tokenization.
struct RougePair {
  RougeScore rouge1, rouge_l;
};
RougePair rouge(std::string_view target, std::string_view prediction, bool stem);

}  // namespace lethe::eval

// The stages of a Hugging Face tokenizer.json pipeline, as in the `tokenizers` library:
//   added tokens -> normalizer -> pre-tokenizer -> model (BPE) -> post-processor
//   ids -> tokens -> decoder -> text
// Each stage is built from its JSON object by a factory that refuses unknown or unsupported
// types with an error naming the JSON path and the type — never a silently different result.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/json_util.h"

namespace lethe::text {

// A piece of text on its way to the model. `at_start`: it begins at offset 0 of the input
// (Metaspace's prepend_scheme "first" depends on it).
struct Piece {
  std::string text;
  bool at_start = false;
};
using Pieces = std::vector<Piece>;

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string apply(std::string s) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(Pieces& pieces) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the special tokens of a single sequence.
  virtual void apply(std::vector<std::int64_t>& ids) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string>& tokens) const = 0;
};

// `where` is the JSON path for error messages ("tokenizer.json: normalizer.normalizers[1]").
std::unique_ptr<Normalizer> make_normalizer(const Json& j, const std::string& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& j, const std::string& where);
std::unique_ptr<Decoder> make_decoder(const Json& j, const std::string& where);
// `token_id` resolves token text to ids for TemplateProcessing's special tokens.
std::unique_ptr<PostProcessor> make_post_processor(const Json& j, const std::string& where);
// A TemplateProcessing for "[bos] $A [eos]" (either optional).
std::unique_ptr<PostProcessor> make_bos_eos_processor(std::vector<std::int64_t> before,
                                                      std::vector<std::int64_t> after);

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
SplitBehavior parse_split_behavior(const Json& v, const std::string& where);
// Splits `s` around `matches` (sorted, non-overlapping byte ranges) as the `tokenizers` library
// does; empty pieces are dropped. With invert, the matches are the pieces and the gaps the
// delimiters.
std::vector<std::string> split_by(std::string_view s,
                                  const std::vector<std::pair<std::size_t, std::size_t>>& matches,
                                  SplitBehavior behavior, bool invert = false);

// Transformers' clean_up_tokenization: " ." -> "." and the like.
std::string clean_up_tokenization(std::string text);

}  // namespace lethe::text

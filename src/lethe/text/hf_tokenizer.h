// Tokenizer for Hugging Face tokenizer.json files.
#pragma once

#include <array>
#include <filesystem>
#include <unordered_map>
#include <memory>
#include <string>
#include <vector>

#include "lethe/text/tokenizer.h"
#include "text/bpe.h"
#include "text/hf_pipeline.h"

namespace lethe::text {

class HfTokenizer : public Tokenizer {
 public:
  // `source` names the file in errors.
  HfTokenizer(const std::string& json_text, const std::string& source);

  std::vector<std::int64_t> encode_valid(std::string_view text, bool add_special_tokens) const override;
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens) const override;
  std::string id_to_token(std::int64_t id) const override;
  std::optional<std::int64_t> token_to_id(std::string_view token) const override;
  std::int64_t vocab_size() const override;
  bool is_special(std::int64_t id) const override;
  std::string kind() const override { return "tokenizer.json (BPE)"; }

  // transformers' LlamaTokenizerFast rebuilds the post-processor from add_bos_token /
  // add_eos_token of tokenizer_config.json; the folder loader calls this when it applies.
  void set_bos_eos(std::optional<std::int64_t> bos, std::optional<std::int64_t> eos);
  void set_clean_up_tokenization_spaces(bool on) { clean_up_ = on; }

 private:
  struct Added {
    std::string content;  // as matched (normalized for normalized tokens)
    std::string text;     // as written in the file (what decode prints)
    std::int64_t id;
    bool single_word, lstrip, rstrip, normalized, special;
  };
  // A byte trie over added-token contents; leftmost-longest matching.
  struct Trie {
    struct Node {
      std::unordered_map<unsigned char, std::int32_t> next;
      std::int32_t token = -1;  // index into added_
    };
    std::vector<Node> nodes{Node{}};
    std::array<bool, 256> first{};
    void insert(const std::string& s, std::int32_t token);
  };
  struct Match {
    std::size_t begin, end;
    std::int32_t token;
  };
  void build(const std::string& json_text, const std::string& source);
  std::vector<Match> find_added(std::string_view s, const Trie& trie) const;
  void encode_segment(std::string_view text, bool at_start, std::vector<std::int64_t>& ids) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<Added> added_;
  Trie raw_trie_, normalized_trie_;
  TokenMap added_by_text_;
  std::unordered_map<std::int64_t, std::size_t> added_by_id_;
  bool clean_up_ = false;
};

}  // namespace lethe::text

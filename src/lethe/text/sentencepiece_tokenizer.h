// Tokenizers read through libsentencepiece (.model) and from llama2.c's tokenizer.bin.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lethe/text/tokenizer.h"

namespace lethe::text {

// A SentencePiece model, used as transformers' LlamaTokenizer (legacy mode) uses it: the text
// of control tokens (<s>, </s>) written in the input is recognised, the pieces between are
// encoded separately, and add_special_tokens adds BOS (add_bos_token) / EOS (add_eos_token).
class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& model);
  ~SentencePieceTokenizer() override;

  std::vector<std::int64_t> encode_valid(std::string_view text, bool add_special_tokens) const override;
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens) const override;
  std::string id_to_token(std::int64_t id) const override;
  std::optional<std::int64_t> token_to_id(std::string_view token) const override;
  std::int64_t vocab_size() const override;
  bool is_special(std::int64_t id) const override;
  std::string kind() const override { return "sentencepiece"; }

  void set_add_bos_eos(bool bos, bool eos) {
    add_bos_ = bos;
    add_eos_ = eos;
  }
  void set_clean_up_tokenization_spaces(bool on) { clean_up_ = on; }

 private:
  std::unique_ptr<class SpmBackend> sp_;
  std::filesystem::path path_;
  std::vector<std::pair<std::string, std::int64_t>> control_texts_;  // longest first
  bool add_bos_ = true, add_eos_ = false, clean_up_ = false;
};

// llama2.c's tokenizer.bin: int32 max_token_length, then per token float score, int32 length,
// bytes. Spaces appear as ' ' (not '▁'), BOS/EOS as "\n<s>\n" / "\n</s>\n", bytes as "<0xXX>".
// Encoding is llama2.c's: a dummy-prefix space, code points (byte fallback at id byte + 3),
// then repeatedly the adjacent merge with the highest score.
class Llama2cTokenizer : public Tokenizer {
 public:
  explicit Llama2cTokenizer(const std::filesystem::path& file);

  std::vector<std::int64_t> encode_valid(std::string_view text, bool add_special_tokens) const override;
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens) const override;
  std::string id_to_token(std::int64_t id) const override;
  std::optional<std::int64_t> token_to_id(std::string_view token) const override;
  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(pieces_.size()); }
  bool is_special(std::int64_t id) const override { return id >= 0 && id <= 2; }
  std::string kind() const override { return "llama2.c tokenizer.bin"; }

  // The same tokenizer as a Hugging Face tokenizer.json (what transformers' LlamaConverter
  // writes for a SentencePiece BPE model: pieces with '▁', merges ordered by score, byte
  // fallback), so converted models carry a tokenizer transformers can load.
  std::string to_tokenizer_json() const;

 private:
  std::vector<std::string> pieces_;  // as stored (spaces as ' ')
  std::vector<float> scores_;
  std::unordered_map<std::string, std::int64_t> lookup_;    // stored piece -> id
  std::unordered_map<std::string, std::int64_t> by_token_;  // id_to_token() -> id
};

}  // namespace lethe::text

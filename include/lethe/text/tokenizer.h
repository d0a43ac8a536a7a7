// text::Tokenizer: text <-> token ids, exactly as the model's Hugging Face tokenizer does it.
//
// Formats (load_tokenizer picks by path):
//   model folder           tokenizer.json if present, else tokenizer.model, plus the special
//                          tokens of tokenizer_config.json / special_tokens_map.json /
//                          generation_config.json
//   tokenizer.json         Hugging Face `tokenizers` format (BPE models; see docs/tokenizers.md
//                          for the supported normalizers, pre-tokenizers, post-processors and
//                          decoders — anything else is refused at load, naming the component)
//   *.model                SentencePiece model (libsentencepiece)
//   *.bin                  llama2.c tokenizer (scores + pieces)
//
// A Tokenizer is immutable after loading and safe to use from many threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::text {

struct SpecialTokens {
  std::optional<std::int64_t> bos, eos, pad, unk;
  std::string bos_token, eos_token, pad_token, unk_token;  // their text, "" when absent
};

class Tokenizer {
 public:
  virtual ~Tokenizer();

  // Text to ids. With add_special_tokens the tokenizer's own rule adds BOS/EOS (the
  // post-processor of tokenizer.json; add_bos_token/add_eos_token for SentencePiece).
  // Special tokens written in the text are recognised either way, as Hugging Face does.
  // Text that is not valid UTF-8 is an error naming the first bad byte's offset, for every
  // tokenizer alike (Hugging Face's tokenizers take only valid strings).
  std::vector<std::int64_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Ids to text; special tokens are dropped with skip_special_tokens. Bytes that do not form
  // valid UTF-8 become U+FFFD, as in Hugging Face.
  virtual std::string decode(const std::vector<std::int64_t>& ids,
                             bool skip_special_tokens = true) const = 0;
  // The vocabulary entry of an id ("Ġworld", "▁Hello", "<0x0A>"); "" when out of range.
  virtual std::string id_to_token(std::int64_t id) const = 0;
  virtual std::optional<std::int64_t> token_to_id(std::string_view token) const = 0;
  // Number of ids (added tokens included).
  virtual std::int64_t vocab_size() const = 0;
  // True for ids of special (control) tokens, which decode skips.
  virtual bool is_special(std::int64_t id) const = 0;
  // "tokenizer.json (BPE)", "sentencepiece", ...
  virtual std::string kind() const = 0;

  const SpecialTokens& special() const { return special_; }
  // Set by the loader from the folder's configuration files.
  void set_special(const SpecialTokens& s) { special_ = s; }

 protected:
  // encode() after the UTF-8 check.
  virtual std::vector<std::int64_t> encode_valid(std::string_view text, bool add_special_tokens) const = 0;
  SpecialTokens special_;
};

// Throws lethe::Error naming `what` and the offset of the first byte that is not valid UTF-8.
void check_utf8(std::string_view text, const std::string& what);

// The id batches are padded with: pad, else eos, else 0 (padding is masked, so any id works;
// these keep decoded batches readable).
std::int64_t padding_id(const Tokenizer& tok);

// The stop strings that are each one special token ("<|eot_id|>", "<end_of_turn>"): their ids.
// Decoding skips special tokens, so matching decoded text never sees them; generation must stop
// at these ids instead.
std::vector<std::int64_t> special_stop_ids(const Tokenizer& tok, const std::vector<std::string>& stop_strings);

// Loads any supported format (see above). Errors name the file and the offending field.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::filesystem::path& path);
// True when `dir` holds tokenizer files load_tokenizer can read.
bool has_tokenizer(const std::filesystem::path& dir);

// Files of a model folder that describe its tokenizer (install_tokenizer copies them).
const std::vector<std::string>& tokenizer_file_names();

// The tokenizer files present in `folder`, each checked as install_tokenizer would before
// copying: no symlink out of the folder, a regular file, JSON files parse. Throws naming the
// file. A path that is not a folder has none.
std::vector<std::string> check_tokenizer_files(const std::filesystem::path& folder);

// Puts a tokenizer into a model folder so that both lethe and transformers load it with the
// model: a folder's tokenizer files (tokenizer_file_names) are parsed, then copied without
// following symlinks out of the folder (core/output.h), keeping their permission bits; a
// tokenizer.json is copied, a SentencePiece .model becomes tokenizer.model, and a
// llama2.c .bin is converted to an equivalent tokenizer.json. Writes tokenizer_config.json
// (tokenizer class, special tokens) too. The tokenizer's vocabulary must not exceed
// `model_vocab_size`.
void install_tokenizer(const std::filesystem::path& source, const std::filesystem::path& model_dir,
                       std::int64_t model_vocab_size);

// Trains a SentencePiece BPE model on `sentences` (deterministic for the same input and
// options) and writes it atomically to `model_path`.
struct SentencePieceTrainOptions {
  int vocab_size = 1000;
  bool byte_fallback = true;          // unknown characters become <0xXX> byte pieces
  double character_coverage = 1.0;
  std::vector<std::string> user_defined_symbols;  // always kept whole
};
void train_sentencepiece_bpe(const std::vector<std::string>& sentences,
                             const std::filesystem::path& model_path,
                             const SentencePieceTrainOptions& options = {});

}  // namespace lethe::text

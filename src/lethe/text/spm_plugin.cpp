// liblethe_sentencepiece.so: the one library that links libsentencepiece (see spm_backend.h).
#include <exception>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "text/spm_backend.h"

namespace lethe::text {
namespace {

class Backend : public SpmBackend {
 public:
  sentencepiece::SentencePieceProcessor sp;

  bool encode(std::string_view text, std::vector<int>& ids, std::string& error) const override {
    const auto st = sp.Encode(absl::string_view(text.data(), text.size()), &ids);
    if (!st.ok()) error = st.ToString();
    return st.ok();
  }
  bool decode(const std::vector<int>& ids, std::string& text, std::string& error) const override {
    const auto st = sp.Decode(ids, &text);
    if (!st.ok()) error = st.ToString();
    return st.ok();
  }
  int piece_size() const override { return sp.GetPieceSize(); }
  std::string id_to_piece(int id) const override { return sp.IdToPiece(id); }
  int piece_to_id(std::string_view p) const override {
    return sp.PieceToId(absl::string_view(p.data(), p.size()));
  }
  bool is_control(int id) const override { return sp.IsControl(id); }
  bool is_unknown(int id) const override { return sp.IsUnknown(id); }
  int bos_id() const override { return sp.bos_id(); }
  int eos_id() const override { return sp.eos_id(); }
  int unk_id() const override { return sp.unk_id(); }
  int pad_id() const override { return sp.pad_id(); }
};

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& v_;
  std::size_t i_ = 0;
};

}  // namespace
}  // namespace lethe::text

// libsentencepiece reports most faults as a Status but throws from some (its trie builder throws
// on a damaged .model file): the entry points turn both into `error`, so no exception crosses
// the plugin boundary and the caller names the file.
extern "C" lethe::text::SpmBackend* lethe_spm_create(const std::string* bytes, std::string* error) {
  try {
    auto b = std::make_unique<lethe::text::Backend>();
    const auto st = b->sp.LoadFromSerializedProto(*bytes);
    if (!st.ok()) {
      *error = st.ToString();
      return nullptr;
    }
    return b.release();
  } catch (const std::exception& e) {
    *error = e.what();
  } catch (...) {
    *error = "libsentencepiece failed with an unknown exception";
  }
  return nullptr;
}

extern "C" bool lethe_spm_train(const std::vector<std::string>* sentences,
                                const std::unordered_map<std::string, std::string>* args,
                                std::string* model, std::string* error) {
  try {
    lethe::text::VectorIterator it(*sentences);
    const auto st = sentencepiece::SentencePieceTrainer::Train(*args, &it, model);
    if (!st.ok()) *error = st.ToString();
    return st.ok();
  } catch (const std::exception& e) {
    *error = e.what();
  } catch (...) {
    *error = "libsentencepiece failed with an unknown exception";
  }
  return false;
}

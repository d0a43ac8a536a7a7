// The SentencePiece backend, loaded at run time from a separate plugin library.
//
// Why a plugin: Debian's libsentencepiece carries its own copy of protobuf-lite and exports its
// symbols; libtorch links the system libprotobuf. In one process the two copies interpose each
// other's symbols and the process crashes during start-up. The plugin
// (liblethe_sentencepiece.so, the only thing linked against libsentencepiece) is opened with
// RTLD_LOCAL | RTLD_DEEPBIND, so each side keeps its own protobuf.
//
// The interface is C++ (same process, same libstdc++); no exception crosses it — errors come
// back as strings.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lethe::text {

class SpmBackend {
 public:
  virtual ~SpmBackend() = default;
  // False with `error` set when encoding fails.
  virtual bool encode(std::string_view text, std::vector<int>& ids, std::string& error) const = 0;
  virtual bool decode(const std::vector<int>& ids, std::string& text, std::string& error) const = 0;
  virtual int piece_size() const = 0;
  virtual std::string id_to_piece(int id) const = 0;
  virtual int piece_to_id(std::string_view piece) const = 0;  // unk id when unknown
  virtual bool is_control(int id) const = 0;
  virtual bool is_unknown(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual int unk_id() const = 0;
  virtual int pad_id() const = 0;
};

// Entry points of the plugin (extern "C" so dlsym finds them by name).
using SpmCreateFn = SpmBackend* (*)(const std::string* model_bytes, std::string* error);
using SpmTrainFn = bool (*)(const std::vector<std::string>* sentences,
                            const std::unordered_map<std::string, std::string>* args,
                            std::string* model_bytes, std::string* error);

// Loads a model from its serialized bytes (the plugin is opened on first use). Throws
// lethe::Error naming `source` on failure, or when the plugin cannot be found.
std::unique_ptr<SpmBackend> spm_load(const std::string& model_bytes, const std::string& source);
// Trains a model; returns its serialized bytes.
std::string spm_train(const std::vector<std::string>& sentences,
                      const std::unordered_map<std::string, std::string>& args);

}  // namespace lethe::text

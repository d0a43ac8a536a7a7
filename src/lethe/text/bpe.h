// The BPE model of tokenizer.json: vocabulary, ranked merges, byte fallback, unknown token,
// ignore_merges. Merging follows `tokenizers` exactly: repeatedly apply the lowest-ranked merge
// among adjacent symbols, leftmost first on ties.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json_util.h"

namespace lethe::text {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, std::int64_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  BpeModel(const Json& model, const std::string& where);

  // Appends the ids of one pre-token.
  void tokenize(std::string_view word, std::vector<std::int64_t>& out) const;
  std::optional<std::int64_t> token_to_id(std::string_view token) const;
  const std::string& id_to_token(std::int64_t id) const;  // "" when unknown
  std::int64_t size() const { return static_cast<std::int64_t>(id_to_token_.size()); }

 private:
  void merge_word(std::string_view word, std::vector<std::int64_t>& out) const;

  TokenMap vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> merges_;  // pair -> (rank, id)
  std::array<std::int32_t, 256> byte_ids_{};  // "<0xXX>" tokens for byte fallback, -1 if absent
  bool byte_fallback_ = false, ignore_merges_ = false, fuse_unk_ = false;
  std::optional<std::int64_t> unk_id_;

  // Word -> ids, shared by all threads: 16 shards, each cleared when it grows past a bound.
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<std::int64_t>, StringHash, std::equal_to<>> map;
  };
  mutable std::array<Shard, 16> cache_;
};

}  // namespace lethe::text

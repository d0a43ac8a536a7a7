// Tensor-level access to safetensors files and Hugging Face checkpoints (single-file or
// sharded through model.safetensors.index.json), and the safetensors writer.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lethe/io/safetensors.h"

namespace lethe {
class MappedFile;
}

namespace lethe::io {

c10::ScalarType to_scalar_type(DType dtype);
DType from_scalar_type(c10::ScalarType type);  // throws for types safetensors cannot hold

// One memory-mapped, validated safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;

  const SafetensorsHeader& header() const { return header_; }
  const std::filesystem::path& path() const { return path_; }

  // A CPU tensor that owns a copy of the data, converted to `dtype` when given.
  at::Tensor load(std::string_view name, std::optional<c10::ScalarType> dtype = {}) const;
  // Copies the tensor into `dst` (any dtype or device) whose shape must match exactly.
  void read_into(std::string_view name, at::Tensor& dst) const;

 private:
  const TensorInfo& info(std::string_view name) const;
  at::Tensor view(const TensorInfo& info) const;  // zero-copy when aligned

  std::filesystem::path path_;
  std::unique_ptr<MappedFile> file_;
  SafetensorsHeader header_;
};

// Writes tensors (any device; made contiguous on CPU) in the layout Hugging Face writes:
// names sorted, offsets contiguous, header padded with spaces to a multiple of 8 bytes,
// `__metadata__` carrying {"format": "pt"} (transformers refuses files without it) plus
// `metadata`. The write is atomic. Names must be unique.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The weights of a Hugging Face model folder: `model.safetensors`, or the shards listed in
// `model.safetensors.index.json`. Tensor names are unique across shards.
class Checkpoint {
 public:
  // `path` is a model folder, a .safetensors file or a .safetensors.index.json file.
  static Checkpoint open(const std::filesystem::path& path);

  std::vector<std::string> names() const;  // sorted
  const TensorInfo* find(std::string_view name) const;
  void read_into(std::string_view name, at::Tensor& dst) const;
  at::Tensor load(std::string_view name, std::optional<c10::ScalarType> dtype = {}) const;
  const std::vector<std::filesystem::path>& files() const { return files_; }
  std::uint64_t total_bytes() const;

 private:
  std::vector<std::filesystem::path> files_;
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, std::size_t, std::less<>> where_;  // name -> shard index
};

}  // namespace lethe::io

// safetensors: the checkpoint format of Hugging Face models.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON, then the raw tensor bytes.
// The JSON maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the byte after the header) plus an optional "__metadata__" string map.
//
// Reading is strict, as in the reference implementation: every dtype known, every shape's byte
// size equal to its offset range, ranges in bounds, non-overlapping and covering the data
// section without holes. Any violation is one lethe::Error naming the file, the tensor and the
// offending values — never a crash, whatever the bytes. The header parser below needs no torch,
// so it is also what the libFuzzer target (tests/fuzz) exercises.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lethe::io {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

std::string_view dtype_name(DType dtype);        // "F32", "BF16", ...
std::size_t dtype_size(DType dtype);             // bytes per element
std::optional<DType> dtype_from_name(std::string_view name);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // byte offsets relative to the start of the data section
  std::uint64_t end = 0;
  std::int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  std::uint64_t data_offset = 0;  // absolute file offset of the data section (8 + N)

  const TensorInfo* find(std::string_view name) const;
};

// Largest JSON header accepted (the reference implementation's limit).
inline constexpr std::uint64_t kMaxSafetensorsHeader = 100'000'000;

// Parses and validates the header of a safetensors image of `size` bytes. `source` names the
// file in error messages.
SafetensorsHeader parse_safetensors_header(const std::uint8_t* data, std::size_t size,
                                           const std::string& source);

}  // namespace lethe::io

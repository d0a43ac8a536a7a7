// Tensor side of safetensors: mapping files into tensors and writing them back.
#include "lethe/io/safetensors.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cstring>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/io/checkpoint.h"

namespace lethe::io {
namespace fs = std::filesystem;

c10::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::kF64: return c10::kDouble;
    case DType::kF32: return c10::kFloat;
    case DType::kF16: return c10::kHalf;
    case DType::kBF16: return c10::kBFloat16;
    case DType::kI64: return c10::kLong;
    case DType::kI32: return c10::kInt;
    case DType::kI16: return c10::kShort;
    case DType::kI8: return c10::kChar;
    case DType::kU8: return c10::kByte;
    case DType::kBool: return c10::kBool;
  }
  fail("internal: unknown DType");
}

DType from_scalar_type(c10::ScalarType type) {
  switch (type) {
    case c10::kDouble: return DType::kF64;
    case c10::kFloat: return DType::kF32;
    case c10::kHalf: return DType::kF16;
    case c10::kBFloat16: return DType::kBF16;
    case c10::kLong: return DType::kI64;
    case c10::kInt: return DType::kI32;
    case c10::kShort: return DType::kI16;
    case c10::kChar: return DType::kI8;
    case c10::kByte: return DType::kU8;
    case c10::kBool: return DType::kBool;
    default: break;
  }
  fail("safetensors cannot store tensors of type ", c10::toString(type));
}

SafetensorsFile::SafetensorsFile(const fs::path& path)
    : path_(path), file_(std::make_unique<MappedFile>(path)) {
  header_ = parse_safetensors_header(file_->data(), file_->size(), path.string());
}
SafetensorsFile::~SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  const TensorInfo* t = header_.find(name);
  LETHE_CHECK(t != nullptr, path_.string(), ": no tensor named '", name, "'");
  return *t;
}

at::Tensor SafetensorsFile::view(const TensorInfo& t) const {
  const std::uint8_t* p = file_->data() + header_.data_offset + t.begin;
  const auto type = to_scalar_type(t.dtype);
  const std::size_t item = dtype_size(t.dtype);
  if (reinterpret_cast<std::uintptr_t>(p) % item == 0) {
    // The mapping is read-only; the view is only ever read (copied from), never written.
    return torch::from_blob(const_cast<std::uint8_t*>(p), t.shape,
                            torch::TensorOptions().dtype(type));
  }
  auto out = torch::empty(t.shape, torch::TensorOptions().dtype(type));
  std::memcpy(out.data_ptr(), p, t.end - t.begin);
  return out;
}

at::Tensor SafetensorsFile::load(std::string_view name,
                                 std::optional<c10::ScalarType> dtype) const {
  const TensorInfo& t = info(name);
  at::Tensor v = view(t);
  if (dtype && *dtype != v.scalar_type()) return v.to(*dtype);
  return v.clone();
}

void SafetensorsFile::read_into(std::string_view name, at::Tensor& dst) const {
  const TensorInfo& t = info(name);
  LETHE_CHECK(dst.sizes().vec() == t.shape, path_.string(), ": tensor '", name, "' has shape ",
              c10::IntArrayRef(t.shape), " but ", dst.sizes(), " is expected");
  torch::NoGradGuard no_grad;
  dst.copy_(view(t));
  file_->release(header_.data_offset + t.begin, t.end - t.begin);
}

void save_safetensors(const fs::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> sorted;
  sorted.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    LETHE_CHECK(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    LETHE_CHECK(!name.empty() && name != "__metadata__", "save_safetensors: invalid tensor name '",
                name, "'");
    sorted.emplace_back(name, t.detach().to(torch::kCPU).contiguous());
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 1; i < sorted.size(); ++i) {
    LETHE_CHECK(sorted[i].first != sorted[i - 1].first, "save_safetensors ", path.string(),
                ": duplicate tensor name '", sorted[i].first, "'");
  }

  Json header = Json::object();
  Json meta = Json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    const std::uint64_t bytes = static_cast<std::uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", std::string(dtype_name(from_scalar_type(t.scalar_type())))},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>((text.size() >> (8 * i)) & 0xff);

  AtomicFileWriter w(path);
  w.write(len, 8);
  w.write(text);
  for (const auto& [name, t] : sorted) {
    w.write(t.data_ptr(), static_cast<std::size_t>(t.numel()) * t.element_size());
  }
  w.commit();
}

}  // namespace lethe::io

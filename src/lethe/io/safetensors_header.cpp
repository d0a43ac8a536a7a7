#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "lethe/core/error.h"
#include "lethe/io/safetensors.h"

namespace lethe::io {
namespace {

struct DTypeRow {
  DType dtype;
  std::string_view name;
  std::size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::kF64, "F64", 8}, {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2}, {DType::kI8, "I8", 1},   {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};

const DTypeRow& row(DType d) {
  for (const auto& r : kDTypes)
    if (r.dtype == d) return r;
  fail("internal: unknown DType value ", static_cast<int>(d));
}

std::uint64_t as_offset(const nlohmann::json& v, const std::string& where) {
  LETHE_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0),
              where, " must be a non-negative integer, got ", v.dump());
  return v.get<std::uint64_t>();
}

TensorInfo parse_entry(const std::string& name, const nlohmann::json& e, const std::string& src) {
  const std::string where = src + ": tensor '" + name + "'";
  LETHE_CHECK(!name.empty(), src, ": a tensor has an empty name");
  LETHE_CHECK(e.is_object(), where, ": entry must be an object, got ", e.type_name());
  for (const auto& [key, _] : e.items()) {
    LETHE_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", where,
                ": unexpected field '", key, "' (expected dtype, shape, data_offsets)");
  }
  LETHE_CHECK(e.contains("dtype") && e["dtype"].is_string(), where, ": missing string 'dtype'");
  LETHE_CHECK(e.contains("shape") && e["shape"].is_array(), where, ": missing array 'shape'");
  LETHE_CHECK(e.contains("data_offsets") && e["data_offsets"].is_array() &&
                  e["data_offsets"].size() == 2,
              where, ": 'data_offsets' must be an array [begin, end]");
  TensorInfo t;
  t.name = name;
  const auto dname = e["dtype"].get<std::string>();
  auto dt = dtype_from_name(dname);
  LETHE_CHECK(dt.has_value(), where, ": unknown dtype '", dname,
              "' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  t.dtype = *dt;
  std::uint64_t numel = 1;
  for (const auto& d : e["shape"]) {
    std::uint64_t v = as_offset(d, where + " shape entry");
    LETHE_CHECK(v <= (std::uint64_t{1} << 62), where, ": shape entry ", v, " is too large");
    if (v != 0 && numel > (std::uint64_t{1} << 62) / v) fail(where, ": shape overflows");
    numel *= v;
    t.shape.push_back(static_cast<std::int64_t>(v));
  }
  t.begin = as_offset(e["data_offsets"][0], where + " data_offsets[0]");
  t.end = as_offset(e["data_offsets"][1], where + " data_offsets[1]");
  LETHE_CHECK(t.begin <= t.end, where, ": data_offsets [", t.begin, ", ", t.end,
              "] end before begin");
  const std::uint64_t bytes = numel * dtype_size(t.dtype);
  LETHE_CHECK(bytes / dtype_size(t.dtype) == numel, where, ": byte size overflows");
  LETHE_CHECK(t.end - t.begin == bytes, where, ": data_offsets [", t.begin, ", ", t.end,
              "] hold ", t.end - t.begin, " bytes but dtype ", dname, " and its shape need ",
              bytes);
  return t;
}

}  // namespace

std::string_view dtype_name(DType dtype) { return row(dtype).name; }
std::size_t dtype_size(DType dtype) { return row(dtype).size; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& r : kDTypes)
    if (r.name == name) return r.dtype;
  return std::nullopt;
}

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

const TensorInfo* SafetensorsHeader::find(std::string_view name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  if (it != tensors.end() && it->name == name) return &*it;
  return nullptr;
}

SafetensorsHeader parse_safetensors_header(const std::uint8_t* data, std::size_t size,
                                           const std::string& source) {
  LETHE_CHECK(size >= 8, source, ": file is ", size,
              " bytes; a safetensors file starts with an 8-byte header length");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  LETHE_CHECK(n <= kMaxSafetensorsHeader, source, ": header length ", n,
              " exceeds the limit of ", kMaxSafetensorsHeader, " bytes (corrupt file?)");
  LETHE_CHECK(n <= size - 8, source, ": header length ", n, " runs past the end of the file (",
              size, " bytes) — truncated or not a safetensors file");
  LETHE_CHECK(n >= 2 && data[8] == '{', source,
              ": header does not start with '{' — not a safetensors file");

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data + 8, data + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail(source, ": header is not valid JSON: ", e.what());
  }
  LETHE_CHECK(header.is_object(), source, ": header must be a JSON object");

  SafetensorsHeader out;
  out.data_offset = 8 + n;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      LETHE_CHECK(value.is_object(), source, ": __metadata__ must be an object of strings");
      for (const auto& [mk, mv] : value.items()) {
        LETHE_CHECK(mv.is_string(), source, ": __metadata__['", mk, "'] must be a string");
        out.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    out.tensors.push_back(parse_entry(key, value, source));
  }

  // The data section must be covered exactly: sorted by offset, each tensor starts where the
  // previous one ended, and the last one ends at the end of the file.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : out.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const std::uint64_t data_size = size - out.data_offset;
  std::uint64_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : by_offset) {
    if (t->begin < expected) {
      fail(source, ": tensor '", t->name, "' [", t->begin, ", ", t->end, ") overlaps tensor '",
           prev->name, "' [", prev->begin, ", ", prev->end, ")");
    }
    LETHE_CHECK(t->begin == expected, source, ": gap in the data section before tensor '",
                t->name, "' (bytes ", expected, "..", t->begin, " belong to no tensor)");
    LETHE_CHECK(t->end <= data_size, source, ": tensor '", t->name, "' data_offsets [",
                t->begin, ", ", t->end, "] run past the end of the data section (", data_size,
                " bytes) — truncated file?");
    expected = t->end;
    prev = t;
  }
  LETHE_CHECK(expected == data_size, source, ": data section has ", data_size,
              " bytes but the tensors cover ", expected, " — trailing bytes or truncated header");

  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return out;
}

}  // namespace lethe::io

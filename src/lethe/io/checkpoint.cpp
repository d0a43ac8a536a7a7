// Hugging Face checkpoints: one model.safetensors, or shards named by an index file.
#include "lethe/io/checkpoint.h"

#include "core/json_util.h"
#include "lethe/core/error.h"

namespace lethe::io {
namespace fs = std::filesystem;

namespace {
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

Checkpoint Checkpoint::open(const fs::path& path) {
  fs::path file = path;
  if (fs::is_directory(path)) {
    if (fs::exists(path / kSingleFile)) {
      file = path / kSingleFile;
    } else if (fs::exists(path / kIndexFile)) {
      file = path / kIndexFile;
    } else {
      fail(path.string(), ": no ", kSingleFile, " or ", kIndexFile,
           " (lethe reads safetensors checkpoints only; convert .bin/.pt weights with "
           "transformers' save_pretrained(safe_serialization=True))");
    }
  }
  LETHE_CHECK(fs::exists(file), file.string(), ": no such file");

  Checkpoint ck;
  if (ends_with(file.filename().string(), ".index.json")) {
    Json index = parse_json_file(file);
    LETHE_CHECK(index.is_object() && index.contains("weight_map") &&
                    index["weight_map"].is_object(),
                file.string(), ": missing object 'weight_map'");
    std::map<std::string, std::size_t> shard_of_file;
    std::vector<std::pair<std::string, std::string>> listed;
    for (const auto& [name, shard] : index["weight_map"].items()) {
      LETHE_CHECK(shard.is_string(), file.string(), ": weight_map['", name,
                  "'] must be a file name");
      const std::string shard_name = shard.get<std::string>();
      LETHE_CHECK(shard_name.find('/') == std::string::npos && shard_name != ".." &&
                      !shard_name.empty(),
                  file.string(), ": weight_map['", name, "'] names '", shard_name,
                  "', which is not a file in the checkpoint folder");
      if (!shard_of_file.count(shard_name)) {
        shard_of_file[shard_name] = ck.shards_.size();
        fs::path shard_path = file.parent_path() / shard_name;
        LETHE_CHECK(fs::exists(shard_path), file.string(), ": shard ", shard_name,
                    " (holding '", name, "') does not exist");
        ck.files_.push_back(shard_path);
        ck.shards_.push_back(std::make_shared<SafetensorsFile>(shard_path));
      }
      listed.emplace_back(name, shard_name);
    }
    LETHE_CHECK(!ck.shards_.empty(), file.string(), ": weight_map is empty");
    for (const auto& [name, shard_name] : listed) {
      const auto& shard = ck.shards_[shard_of_file[shard_name]];
      LETHE_CHECK(shard->header().find(name) != nullptr, file.string(), ": '", name,
                  "' is listed in ", shard_name, " but that file does not contain it");
    }
  } else {
    ck.files_.push_back(file);
    ck.shards_.push_back(std::make_shared<SafetensorsFile>(file));
  }

  for (std::size_t i = 0; i < ck.shards_.size(); ++i) {
    for (const auto& t : ck.shards_[i]->header().tensors) {
      auto [it, inserted] = ck.where_.emplace(t.name, i);
      LETHE_CHECK(inserted, "tensor '", t.name, "' appears in both ", ck.files_[it->second].string(),
                  " and ", ck.files_[i].string());
    }
  }
  return ck;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, _] : where_) out.push_back(name);
  return out;
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return nullptr;
  return shards_[it->second]->header().find(name);
}

void Checkpoint::read_into(std::string_view name, at::Tensor& dst) const {
  auto it = where_.find(name);
  LETHE_CHECK(it != where_.end(), "checkpoint has no tensor named '", name, "'");
  shards_[it->second]->read_into(name, dst);
}

at::Tensor Checkpoint::load(std::string_view name, std::optional<c10::ScalarType> dtype) const {
  auto it = where_.find(name);
  LETHE_CHECK(it != where_.end(), "checkpoint has no tensor named '", name, "'");
  return shards_[it->second]->load(name, dtype);
}

std::uint64_t Checkpoint::total_bytes() const {
  std::uint64_t n = 0;
  for (const auto& s : shards_)
    for (const auto& t : s->header().tensors) n += t.end - t.begin;
  return n;
}

}  // namespace lethe::io

// YAML -> JSON and overrides (core/config.h).
#include "lethe/core/config.h"

#include <yaml-cpp/yaml.h>

#include <map>
#include <string>

namespace lethe {
namespace {

// Text that will live in the config's JSON: JSON holds only valid UTF-8 (and would throw at the
// first dump, far from the line that held it).
const std::string& checked_text(const std::string& s, const YAML::Node& n, const std::string& where) {
  try {
    (void)Json(s).dump();
  } catch (const Json::exception&) {
    fail(where, ": line ", n.Mark().line + 1, ": text that is not valid UTF-8");
  }
  return s;
}

// Aliases make a YAML document a graph: one that refers to itself never ends, and nested
// aliases can multiply its size exponentially. A config needs neither, so depth and size are
// bounded and either limit is an error naming the line.
constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxNodes = 1'000'000;

struct Conversion {
  const std::string& where;
  std::size_t nodes = 0;
};

Json to_json(const YAML::Node& n, Conversion& c, int depth) {
  const std::string& where = c.where;
  LETHE_CHECK(depth <= kMaxDepth, where, ": line ", n.Mark().line + 1, ": nested deeper than ", kMaxDepth,
              " levels (an alias that contains itself?)");
  LETHE_CHECK(++c.nodes <= kMaxNodes, where, ": more than ", kMaxNodes, " values once aliases are expanded");
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (std::size_t i = 0; i < n.size(); ++i) a.push_back(to_json(n[i], c, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      std::map<std::string, int> line_of;
      for (const auto& kv : n) {
        const std::string key = checked_text(kv.first.as<std::string>(), kv.first, where);
        const int line = kv.first.Mark().line + 1;
        // yaml-cpp keeps the last of two equal keys; a config that says two things is an error.
        LETHE_CHECK(!o.contains(key), where, ": line ", line, ": duplicate key '", key, "' (first on line ",
                    line_of[key], ")");
        line_of[key] = line;
        o[key] = to_json(kv.second, c, depth + 1);
      }
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = checked_text(n.Scalar(), n, where);
      if (n.Tag() == "!") return s;  // quoted: always a string
      try {
        std::size_t used = 0;
        const long long v = std::stoll(s, &used);
        if (used == s.size()) return v;
      } catch (...) {
      }
      try {
        std::size_t used = 0;
        const double v = std::stod(s, &used);
        if (used == s.size()) return v;
      } catch (...) {
      }
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~") return nullptr;
      return s;
    }
  }
  return nullptr;
}

// to_json with conversion errors (a key that is not a scalar) naming the source.
Json convert(const YAML::Node& node, const std::string& source) {
  try {
    Conversion c{source};
    return to_json(node, c, 0);
  } catch (const YAML::Exception& e) {
    fail(source, ": ", e.what());
  }
}

// A whole document: an empty one is an empty mapping.
Json as_config(const YAML::Node& node, const std::string& source) {
  Json root = convert(node, source);
  return root.is_null() ? Json::object() : root;
}

}  // namespace

void apply_override(Json& root, const std::string& spec) {
  const auto eq = spec.find('=');
  LETHE_CHECK(eq != std::string::npos && eq > 0, "override '", spec, "' must look like key.sub=value");
  const std::string key = spec.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(spec.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    fail("override '", spec, "': the value is not valid YAML (", e.what(), ")");
  }
  try {
    (void)Json(key).dump();
  } catch (const Json::exception&) {
    fail("override '", spec, "': the key is not valid UTF-8");
  }
  LETHE_CHECK(root.is_object(), "override '", spec, "': the config is not a mapping");
  Json* cur = &root;
  std::size_t pos = 0;
  while (true) {
    const auto dot = key.find('.', pos);
    const std::string part = key.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    LETHE_CHECK(!part.empty(), "override '", spec, "': empty key segment");
    if (dot == std::string::npos) {
      (*cur)[part] = convert(value, "override '" + spec + "'");  // `key=`: null, refused where read
      return;
    }
    if (!cur->contains(part) || !(*cur)[part].is_object()) (*cur)[part] = Json::object();
    cur = &(*cur)[part];
    pos = dot + 1;
  }
}


Json parse_yaml(const std::string& text, const std::string& source) {
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(source, ": not valid YAML (", e.what(), ")");
  }
  return as_config(node, source);
}

Json load_yaml_file(const std::filesystem::path& path) {
  YAML::Node node;
  try {
    node = YAML::LoadFile(path.string());
  } catch (const YAML::BadFile&) {
    fail(path.string(), ": cannot read the config file");
  } catch (const YAML::Exception& e) {
    fail(path.string(), ": not valid YAML (", e.what(), ")");
  }
  return as_config(node, path.string());
}

}  // namespace lethe

#include "lethe/data/records.h"

#include "core/json_util.h"
#include "lethe/core/error.h"

namespace lethe::data {
namespace fs = std::filesystem;
namespace {

// Every record of a JSONL file or a JSON array, with a label for errors ("line 3", "[3]").
std::vector<std::pair<std::string, Json>> read_records(const fs::path& path) {
  const std::string text = read_file(path);
  std::vector<std::pair<std::string, Json>> out;
  std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    Json arr;
    try {
      arr = Json::parse(text);
    } catch (const Json::exception& e) {
      fail(path.string(), ": not valid JSON (", e.what(), ")");
    }
    for (std::size_t i = 0; i < arr.size(); ++i) out.emplace_back("[" + std::to_string(i) + "]", arr[i]);
    return out;
  }
  std::size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.emplace_back("line " + std::to_string(line_no), Json::parse(line));
    } catch (const Json::exception& e) {
      fail(path.string(), ": line ", line_no, ": not valid JSON (", e.what(), ")");
    }
  }
  return out;
}

std::string field(const Json& r, const std::string& key, const std::string& where) {
  LETHE_CHECK(r.is_object(), where, ": expected a JSON object");
  auto it = r.find(key);
  LETHE_CHECK(it != r.end(), where, ": missing field '", key, "'");
  LETHE_CHECK(it->is_string(), where, ": field '", key, "' must be a string, got ", it->type_name());
  return it->get<std::string>();
}

std::string optional_field(const Json& r, const std::string& key, const std::string& where) {
  auto it = r.find(key);
  if (it == r.end() || it->is_null()) return "";
  LETHE_CHECK(it->is_string(), where, ": field '", key, "' must be a string, got ", it->type_name());
  return it->get<std::string>();
}

}  // namespace

std::vector<QARecord> read_qa(const fs::path& path) {
  std::vector<QARecord> out;
  for (const auto& [label, r] : read_records(path)) {
    const std::string where = path.string() + ": " + label;
    QARecord q;
    q.question = field(r, "question", where);
    q.answer = field(r, "answer", where);
    q.paraphrased_question = optional_field(r, "paraphrased_question", where);
    q.paraphrased_answer = optional_field(r, "paraphrased_answer", where);
    auto it = r.find("perturbed_answer");
    if (it != r.end() && !it->is_null()) {
      // A lone string would silently make a truth ratio over one option (TOFU's files hold
      // lists of five).
      LETHE_CHECK(it->is_array(), where, ": field 'perturbed_answer' must be a list of strings, got ",
                  it->is_string() ? "a string" : it->type_name());
      for (std::size_t i = 0; i < it->size(); ++i) {
        LETHE_CHECK((*it)[i].is_string(), where, ": field 'perturbed_answer' entry ", i, " must be a string, got ",
                    (*it)[i].type_name());
        q.perturbed_answers.push_back((*it)[i].get<std::string>());
      }
    }
    out.push_back(std::move(q));
  }
  LETHE_CHECK(!out.empty(), path.string(), ": no records");
  return out;
}

std::vector<MCRecord> read_mc(const fs::path& path) {
  std::vector<MCRecord> out;
  for (const auto& [label, r] : read_records(path)) {
    const std::string where = path.string() + ": " + label;
    MCRecord m;
    m.question = field(r, "question", where);
    const auto c = r.find("choices");
    LETHE_CHECK(c != r.end() && c->is_array(), where, ": field 'choices' must be a list of strings");
    for (std::size_t i = 0; i < c->size(); ++i) {
      LETHE_CHECK((*c)[i].is_string(), where, ": field 'choices' entry ", i, " must be a string, got ",
                  (*c)[i].type_name());
      m.choices.push_back((*c)[i].get<std::string>());
    }
    LETHE_CHECK(m.choices.size() >= 2 && m.choices.size() <= 26, where, ": field 'choices' has ", m.choices.size(),
                " options; 2 to 26 (one letter each) are needed");
    const auto a = r.find("answer");
    LETHE_CHECK(a != r.end() && a->is_number_integer(), where, ": field 'answer' must be the index of the right choice");
    const auto idx = a->get<std::int64_t>();
    LETHE_CHECK(idx >= 0 && static_cast<std::size_t>(idx) < m.choices.size(), where, ": field 'answer' is ", idx,
                ", outside the ", m.choices.size(), " choices");
    m.answer = static_cast<std::size_t>(idx);
    out.push_back(std::move(m));
  }
  LETHE_CHECK(!out.empty(), path.string(), ": no records");
  return out;
}

std::vector<CompletionRecord> read_completions(const fs::path& path, const std::string& pk,
                                               const std::string& ck) {
  std::vector<CompletionRecord> out;
  for (const auto& [label, r] : read_records(path)) {
    const std::string where = path.string() + ": " + label;
    out.push_back({field(r, pk, where), field(r, ck, where)});
  }
  LETHE_CHECK(!out.empty(), path.string(), ": no records");
  return out;
}

std::vector<std::string> read_texts(const fs::path& path, const std::string& key) {
  std::vector<std::string> out;
  // Plain text, one record a line (TOFU's idontknow.jsonl is such a file despite its name):
  // recognised by a first character that cannot begin JSON's objects, arrays or strings.
  const std::string text = read_file(path);
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] != '{' && text[first] != '[' && text[first] != '"') {
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) out.push_back(line);
    }
    return out;
  }
  for (const auto& [label, r] : read_records(path)) {
    if (r.is_string()) {
      out.push_back(r.get<std::string>());
    } else {
      out.push_back(field(r, key, path.string() + ": " + label));
    }
  }
  LETHE_CHECK(!out.empty(), path.string(), ": no records");
  return out;
}

std::vector<InsertRecord> read_insertions(const fs::path& path, const std::string& key) {
  std::vector<InsertRecord> out;
  for (const auto& [label, r] : read_records(path)) {
    const std::string where = path.string() + ": " + label;
    InsertRecord rec;
    rec.text = field(r, key, where);
    const auto it = r.find("repetitions");
    LETHE_CHECK(it != r.end(), where, ": missing field 'repetitions' (how often the document is trained over the run)");
    LETHE_CHECK(it->is_number_integer() && it->get<std::int64_t>() >= 1, where,
                ": field 'repetitions' must be a whole number >= 1, got ", it->dump());
    rec.repetitions = it->get<std::int64_t>();
    out.push_back(std::move(rec));
  }
  LETHE_CHECK(!out.empty(), path.string(), ": no records");
  return out;
}

}  // namespace lethe::data

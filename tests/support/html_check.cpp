#include "support/html_check.h"

#include <cctype>
#include <set>
#include <vector>

namespace lethe::test {
namespace {

const std::set<std::string> kVoid = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"};

std::string where(const std::string& html, std::size_t i) {
  std::size_t line = 1;
  for (std::size_t k = 0; k < i && k < html.size(); ++k) line += html[k] == '\n';
  return " at line " + std::to_string(line);
}

bool valid_entity(const std::string& html, std::size_t i) {
  const std::size_t semi = html.find(';', i);
  if (semi == std::string::npos || semi - i > 10) return false;
  const std::string e = html.substr(i + 1, semi - i - 1);
  if (e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos" || e == "nbsp") return true;
  if (e.size() > 1 && e[0] == '#') {
    for (std::size_t k = 1; k < e.size(); ++k) {
      if (!std::isdigit(static_cast<unsigned char>(e[k]))) return false;
    }
    return true;
  }
  return false;
}

}  // namespace

std::string check_html(const std::string& html) {
  std::vector<std::string> stack;
  std::size_t i = 0;
  bool seen_html = false;
  while (i < html.size()) {
    const char c = html[i];
    if (c == '&') {
      if (!valid_entity(html, i)) return "bad entity" + where(html, i);
      ++i;
      continue;
    }
    if (c == '>') return "stray '>'" + where(html, i);
    if (c != '<') {
      ++i;
      continue;
    }
    if (html.compare(i, 4, "<!--") == 0) {
      const std::size_t e = html.find("-->", i);
      if (e == std::string::npos) return "unclosed comment" + where(html, i);
      i = e + 3;
      continue;
    }
    if (html.compare(i, 9, "<!DOCTYPE") == 0) {
      i = html.find('>', i) + 1;
      continue;
    }
    const bool closing = i + 1 < html.size() && html[i + 1] == '/';
    std::size_t k = i + (closing ? 2 : 1);
    std::string name;
    while (k < html.size() && (std::isalnum(static_cast<unsigned char>(html[k])) || html[k] == '-')) {
      name += static_cast<char>(std::tolower(static_cast<unsigned char>(html[k++])));
    }
    if (name.empty()) return "'<' that starts no tag" + where(html, i);
    if (name == "script" || name == "link" || name == "iframe" || name == "object" || name == "embed") {
      return "<" + name + "> is not allowed in a self-contained report" + where(html, i);
    }
    bool self_closing = false;
    // Attributes: name="value".
    while (true) {
      while (k < html.size() && std::isspace(static_cast<unsigned char>(html[k]))) ++k;
      if (k >= html.size()) return "unterminated tag <" + name + ">" + where(html, i);
      if (html[k] == '>') break;
      if (html[k] == '/' && k + 1 < html.size() && html[k + 1] == '>') {
        self_closing = true;
        ++k;
        break;
      }
      if (closing) return "attributes on a closing tag" + where(html, i);
      std::string attr;
      while (k < html.size() && (std::isalnum(static_cast<unsigned char>(html[k])) || html[k] == '-' || html[k] == ':')) {
        attr += html[k++];
      }
      if (attr.empty() || k >= html.size() || html[k] != '=' || k + 1 >= html.size() || html[k + 1] != '"') {
        return "attribute without a quoted value in <" + name + ">" + where(html, i);
      }
      const std::size_t v0 = k + 2, v1 = html.find('"', v0);
      if (v1 == std::string::npos) return "unterminated attribute value" + where(html, i);
      const std::string value = html.substr(v0, v1 - v0);
      if (value.find('<') != std::string::npos) return "'<' in an attribute value" + where(html, i);
      for (std::size_t a = value.find('&'); a != std::string::npos; a = value.find('&', a + 1)) {
        if (!valid_entity(value, a)) return "bad entity in an attribute" + where(html, i);
      }
      if ((attr == "src" || attr == "href") && value.rfind("#", 0) != 0) {
        return "<" + name + " " + attr + "=\"" + value + "\"> refers to another resource" + where(html, i);
      }
      if (attr.rfind("on", 0) == 0) return "event handler attribute " + attr + where(html, i);
      k = v1 + 1;
    }
    i = k + 1;
    if (closing) {
      if (stack.empty() || stack.back() != name) {
        return "</" + name + "> closes " + (stack.empty() ? std::string("nothing") : "<" + stack.back() + ">") + where(html, i);
      }
      stack.pop_back();
      continue;
    }
    if (name == "html") seen_html = true;
    if (!self_closing && !kVoid.count(name)) {
      if (name == "style" || name == "title") {  // raw text up to the closing tag
        const std::size_t e = html.find("</" + name + ">", i);
        if (e == std::string::npos) return "unclosed <" + name + ">" + where(html, i);
        i = e;
      }
      stack.push_back(name);
    }
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + "> at the end";
  if (!seen_html) return "no <html> element";
  return "";
}

}  // namespace lethe::test

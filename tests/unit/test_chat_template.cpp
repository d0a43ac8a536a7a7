// Chat templates: the five real templates of ../shared/data/chat_templates rendered byte for byte
// as Jinja2 renders them, and the subset's semantics and refusals on small templates.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "lethe/core/error.h"
#include "lethe/text/chat_template.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"
#include "support/fixtures.h"

namespace lethe {
namespace {

using OJson = nlohmann::ordered_json;
namespace fs = std::filesystem;

std::time_t dec_1_2026() {
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 11;
  tm.tm_mday = 1;
  tm.tm_hour = 12;
  return std::mktime(&tm);
}

std::string render(const std::string& src, const OJson& messages = OJson::array(), bool agp = false,
                   OJson vars = OJson::object(), OJson special = OJson::object()) {
  text::ChatTemplate t(src, std::move(special), "test");
  text::ChatTemplate::RenderOptions o;
  o.add_generation_prompt = agp;
  o.variables = std::move(vars);
  o.now = dec_1_2026;
  return t.render(messages, o);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ChatTemplate, RealTemplatesRenderByteExact) {
  const fs::path dir = test::shared_dir() / "data" / "chat_templates";
  LETHE_NEED_FIXTURE(dir / "cases.jsonl");
  std::map<std::string, std::shared_ptr<const text::ChatTemplate>> templates;
  std::ifstream in(dir / "cases.jsonl");
  std::string line;
  int n = 0, with_gen = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const OJson c = OJson::parse(line);
    const std::string name = c["template"].get<std::string>();
    if (!templates.count(name)) templates[name] = text::load_chat_template_config(dir / (name + ".tokenizer_config.json"));
    text::ChatTemplate::RenderOptions o;
    o.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    o.now = dec_1_2026;
    const std::string got = templates[name]->render(c["messages"], o);
    EXPECT_EQ(got, c["expected"].get<std::string>()) << "case " << n << " (" << name << ", add_generation_prompt "
                                                     << o.add_generation_prompt << ")";
    ++n;
    with_gen += o.add_generation_prompt;
  }
  EXPECT_EQ(n, 45);
  EXPECT_EQ(templates.size(), 5u);
  EXPECT_GT(with_gen, 0);
}

TEST(ChatTemplate, WhitespaceControlAsTransformersSetsIt) {
  // trim_blocks drops the newline after a statement, lstrip_blocks the indentation before it;
  // neither touches {{ }}; "-" strips every whitespace on its side; "+" keeps what lstrip drops.
  EXPECT_EQ(render("{% if true %}\nA\n{% endif %}\nB"), "A\nB");
  EXPECT_EQ(render("  {% if true %}x{% endif %}  \n  {{ 'y' }}"), "x  \n  y");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(render("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(render("a\n  {# note #}\nb"), "a\nb");
  EXPECT_EQ(render("{{ 'x' }}\n"), "x");  // one trailing newline of the source is dropped
  EXPECT_EQ(render("{{ 'x' }}\n\n"), "x\n");
  EXPECT_EQ(render("a\r\nb"), "a\nb");
  EXPECT_EQ(render("x {{- ' y ' -}} z"), "x y z");
}

TEST(ChatTemplate, ExpressionsFollowPython) {
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }}"), "3 -4 2 3.5 1024 7");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none ~ true }} {{ [1, 'b'] }} {{ {'k': 1.0} }} {{ 1e20 }} {{ 0.00001 }}"),
            "a1NoneTrue [1, 'b'] {'k': 1.0} 1e+20 1e-05");
  EXPECT_EQ(render("{{ 'abc'[::-1] }} {{ [1,2,3,4][1:3] }} {{ 'héllo'[1] }} {{ 'héllo' | length }}"), "cba [2, 3] é 5");
  EXPECT_EQ(render("{{ 'x' if false }}|{{ 'y' if 0 else 'z' }}|{{ none or 'd' }}|{{ 0 and 1 }}"), "|z|d|0");
  EXPECT_EQ(render("{{ 'b' in 'abc' }} {{ 2 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 1 == 1.0 }} {{ [1] == [1] }}"),
            "True False True True True");
  EXPECT_EQ(render("{{ '  a b  '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'x</t>y'.split('</t>')[-1] }}"),
            "a b|['a', 'b', '', 'c']|['a', 'b']|y");
  EXPECT_EQ(render("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }} {{ 'ab'.startswith('a') }} {{ 'ab'.endswith(('x', 'b')) }}"),
            "ABab True True");
  EXPECT_EQ(render("{{ '\\n'.join(['a', 'b']) | tojson }} {{ 'it\\'s' }} {{ \"\\u00e9\" }}"), "\"a\\nb\" it's é");
  EXPECT_EQ(render("{{ messages[5] is defined }} {{ nothing is defined }} {{ nothing }}|{{ messages | length }}", OJson::array()),
            "False False |0");
}

TEST(ChatTemplate, StatementsScopesAndNamespaces) {
  // set inside a loop does not leak; a namespace carries state out; loop.* as Jinja defines it.
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"), "6");
  EXPECT_EQ(render("{% for c in 'ab' %}{{ loop.index0 }}{{ c }}{{ loop.first }}{{ loop.last }}{{ loop.length }} {% endfor %}"),
            "0aTrueFalse2 1bFalseTrue2 ");
  EXPECT_EQ(render("{% for i in range(10) if i is odd %}{% if i > 6 %}{% break %}{% endif %}{% if i == 3 %}{% continue %}{% endif %}{{ i }}{% endfor %}"),
            "15");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"), "a=1;b=2;");
  EXPECT_EQ(render("{% macro tag(name, open=true) %}<{{ '' if open else '/' }}{{ name }}>{% endmacro %}{{ tag('b') }}x{{ tag('b', open=false) }}"),
            "<b>x</b>");
  EXPECT_EQ(render("{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}in{% endcall %}"), "[in]");
  EXPECT_EQ(render("{% set block %}a{{ 1 + 1 }}{% endset %}{{ block }}!"), "a2!");
  EXPECT_EQ(render("{% if false %}a{% elif 1 %}b{% else %}c{% endif %}"), "b");
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}"), "01 Dec 2026");
}

TEST(ChatTemplate, FiltersAndTests) {
  const OJson msgs = OJson::parse(R"([{"role": "system", "content": "S"}, {"role": "user", "content": " hi "},
                                      {"role": "assistant", "content": "yo", "tool_calls": [{"name": "f", "arguments": {"b": 1, "a": [true, null]}}]}])");
  EXPECT_EQ(render("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}", msgs), " hi ");
  EXPECT_EQ(render("{{ messages | rejectattr('role', 'eq', 'system') | list | length }}", msgs), "2");
  EXPECT_EQ(render("{{ messages[1].content | trim }}|{{ messages[2].tool_calls[0].arguments | tojson }}", msgs),
            "hi|{\"b\": 1, \"a\": [true, null]}");
  EXPECT_EQ(render("{{ messages[2].tool_calls[0].arguments | tojson(indent=2) }}", msgs), "{\n  \"b\": 1,\n  \"a\": [\n    true,\n    null\n  ]\n}");
  EXPECT_EQ(render("{{ messages[0].missing | default('dflt') }} {{ '' | default('e', true) }} {{ [3, 1, 2] | sort | first }}", msgs),
            "dflt e 1");
  EXPECT_EQ(render("{{ 'a-b' | replace('-', '+') }} {{ 'x' | upper }} {{ 42 | string | length }} {{ {'k': 1} | items | list }}"),
            "a+b X 2 [['k', 1]]");
  EXPECT_EQ(render("{{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 3 is divisibleby 3 }} {{ 4 is not even }}"),
            "True True True True True False");
  EXPECT_EQ(render("{{ 'é\"' | tojson }} {{ 'é' | tojson(ensure_ascii=true) }}"), "\"é\\\"\" \"\\u00e9\"");
}

TEST(ChatTemplate, VariablesAndSpecialTokens) {
  EXPECT_EQ(render("{{ bos_token }}{{ messages[0]['content'] }}{% if add_generation_prompt %}>{% endif %}",
                   OJson::parse(R"([{"role": "user", "content": "q"}])"), true, OJson::object(), OJson{{"bos_token", "<s>"}}),
            "<s>q>");
  EXPECT_EQ(render("{% if enable_thinking is defined and enable_thinking is false %}off{% endif %}", OJson::array(), false,
                   OJson{{"enable_thinking", false}}),
            "off");
}

TEST(ChatTemplate, OutsideTheSubsetIsAnErrorAtLoadNamingTheConstruct) {
  auto load_error = [](const std::string& src) {
    return error_of([&] { text::ChatTemplate t(src, OJson::object(), "tmpl"); });
  };
  EXPECT_NE(load_error("{% include 'x.j2' %}").find("the 'include' statement is not supported"), std::string::npos);
  EXPECT_NE(load_error("a\n{{ x | wordwrap }}").find("tmpl:2: unsupported filter 'wordwrap'"), std::string::npos);
  EXPECT_NE(load_error("{{ x is prime }}").find("unsupported test 'prime'"), std::string::npos);
  EXPECT_NE(load_error("{{ 'a'.zfill(3) }}").find("unsupported method 'zfill'"), std::string::npos);
  EXPECT_NE(load_error("{{ cycler('a') }}").find("unknown function 'cycler'"), std::string::npos);
  EXPECT_NE(load_error("{% for x in y recursive %}{% endfor %}").find("recursive for loops"), std::string::npos);
  EXPECT_NE(load_error("{% if x %}").find("missing 'endif'"), std::string::npos);
  EXPECT_NE(load_error("{% endfor %}").find("unexpected 'endfor'"), std::string::npos);
  EXPECT_NE(load_error("{% break %}").find("'break' outside a for loop"), std::string::npos);
  EXPECT_NE(load_error("{{ 'a' ").find("unclosed '{{'"), std::string::npos);
  EXPECT_NE(load_error("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}").find("deeper than"), std::string::npos);
  // Runtime errors name the template and line; raise_exception carries the template's message.
  const std::string gemma_like = "{% if messages[0]['role'] != 'user' %}\n{{ raise_exception('roles must alternate') }}{% endif %}";
  EXPECT_NE(error_of([&] { render(gemma_like, OJson::parse(R"([{"role": "assistant", "content": "x"}])")); })
                .find("test:2: raise_exception: roles must alternate"),
            std::string::npos);
  EXPECT_NE(error_of([&] { render("{{ nothing.attr }}"); }).find("'nothing' is undefined"), std::string::npos);
  EXPECT_NE(error_of([&] { render("{{ 'a' + 1 }}"); }).find("unsupported operand type(s) for +: 'str' and 'int'"), std::string::npos);
  EXPECT_NE(error_of([&] { render("{{ '%s' % 1 }}"); }).find("printf-style"), std::string::npos);
}

TEST(ChatTemplate, FolderLookupAndErrors) {
  const fs::path d = test::temp_dir("chat-template");
  EXPECT_TRUE(text::chat_template_file(d).empty());
  EXPECT_NE(error_of([&] { text::load_chat_template(d); }).find("has no chat template"), std::string::npos);
  {
    std::ofstream(d / "tokenizer_config.json") << R"({"bos_token": {"content": "<s>", "__type": "AddedToken"},
      "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}D"}]})";
  }
  EXPECT_EQ(text::load_chat_template(d)->render(OJson::array(), false), "<s>D");
  {
    std::ofstream(d / "tokenizer_config.json") << R"({"eos_token": "</s>"})";
    std::ofstream(d / "chat_template.jinja") << "{{ eos_token }}J\n";
  }
  EXPECT_EQ(text::chat_template_file(d).filename(), "chat_template.jinja");
  EXPECT_EQ(text::load_chat_template(d)->render(OJson::array(), false), "</s>J");
}

}  // namespace
}  // namespace lethe

namespace lethe {
namespace {

// A chat template in a QA prompt: the prompt is the rendering with the generation prompt, the
// full text the rendering with the answer as the assistant's turn, both encoded without added
// special tokens; the answer span is where they differ.
TEST(ChatTemplate, QaItemsAreRenderedWithAndWithoutTheAssistantTurn) {
  LETHE_NEED_FIXTURE(test::shared_dir() / "data" / "llama2c" / "tok512.model");
  auto tok = text::load_tokenizer(test::shared_dir() / "data" / "llama2c" / "tok512.model");
  text::PromptTemplate t;
  t.name = "chat";
  t.system = "Be brief.";
  t.chat = std::make_shared<text::ChatTemplate>(
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}<end>\n{% endfor %}"
      "{% if add_generation_prompt %}[assistant] {% endif %}",
      OJson{{"bos_token", "<s>"}}, "test");
  const std::string prompt = "<s>[system] Be brief.<end>\n[user] Who is Lily?<end>\n[assistant] ";
  const std::string full = "<s>[system] Be brief.<end>\n[user] Who is Lily?<end>\n[assistant] Lily is a girl.<end>\n";
  EXPECT_EQ(text::format_prompt(t, {}, "Who is Lily?"), prompt);
  const auto e = text::encode_qa(*tok, t, {"Who is Lily?", "Lily is a girl."}, 512);
  auto want = tok->encode(full, false);
  want.push_back(*tok->special().eos);
  EXPECT_EQ(e.input_ids, want);
  EXPECT_EQ(e.prompt_ids, tok->encode(prompt, false));
  const std::vector<std::int64_t> answer(e.input_ids.begin() + static_cast<std::ptrdiff_t>(e.prompt_length), e.input_ids.end() - 1);
  EXPECT_EQ(tok->decode(answer, true), "Lily is a girl.<end>\n");
  for (std::size_t i = 0; i < e.labels.size(); ++i) EXPECT_EQ(e.labels[i], i < e.prompt_length ? -100 : e.input_ids[i]) << i;
  // Few-shot pairs are earlier turns; generation stops where the template ends a turn.
  EXPECT_EQ(text::format_prompt(t, {{"A?", "a"}}, "B?"),
            "<s>[system] Be brief.<end>\n[user] A?<end>\n[assistant] a<end>\n[user] B?<end>\n[assistant] ");
  EXPECT_EQ(text::turn_stop_strings(t), std::vector<std::string>{"<end>"});
  EXPECT_EQ(text::turn_stop_strings(text::PromptTemplate::named("plain")), std::vector<std::string>{"Question:"});
}

TEST(ChatTemplate, TemplateNamesResolveAgainstTheTokenizerFolder) {
  const fs::path d = test::temp_dir("chat-resolve");
  EXPECT_EQ(text::PromptTemplate::resolve("auto", d).name, "plain");
  EXPECT_EQ(text::PromptTemplate::resolve("llama2-chat", d).user_start, "[INST] ");
  EXPECT_NE(error_of([&] { text::PromptTemplate::resolve("chat", d); }).find("has no chat template"), std::string::npos);
  std::ofstream(d / "chat_template.jinja") << "{% for m in messages %}{{ m.content }}{% endfor %}";
  std::ofstream(d / "tokenizer.json") << "{}";
  for (const fs::path& p : {d, d / "tokenizer.json"}) {
    const auto t = text::PromptTemplate::resolve("auto", p);
    ASSERT_NE(t.chat, nullptr) << p;
    EXPECT_EQ(t.name, "chat");
    EXPECT_EQ(text::format_prompt(t, {}, "q"), "q");
  }
}

}  // namespace
}  // namespace lethe

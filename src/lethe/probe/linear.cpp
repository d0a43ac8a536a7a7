// The linear probe (docs/probes.md "linear"): can a person's attribute still be read off the
// model's hidden state at the end of their name? A logistic-regression classifier per layer is
// trained on the retained people — whom every model knows — and tested on the forget people: a
// model that never learnt them (the oracle) sits near chance, the target above it; an unlearned
// model that still encodes the forgotten attribute where the name is read has only hidden it
// (Intrinsic Evaluation; ConceptVectors). Reported beside the verdict, not part of it.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/data/records.h"
#include "lethe/model/causal_lm.h"
#include "lethe/text/template.h"
#include "lethe/text/tokenizer.h"
#include "probe/probes.h"

namespace lethe::probe {
namespace fs = std::filesystem;

namespace {

// One fit, scored on the training rows and on the test rows.
std::pair<double, double> fit_and_score(const at::Tensor& train_x, const std::vector<std::int64_t>& train_y,
                                        const at::Tensor& test_x, const std::vector<std::int64_t>& test_y,
                                        std::int64_t classes) {
  LETHE_CHECK(train_x.dim() == 2 && test_x.dim() == 2 && train_x.size(1) == test_x.size(1) &&
                  train_x.size(0) == static_cast<std::int64_t>(train_y.size()) &&
                  test_x.size(0) == static_cast<std::int64_t>(test_y.size()) && !train_y.empty() && !test_y.empty() &&
                  classes >= 2,
              "linear probe: (n, d) train and test matrices with a label per row and at least 2 classes are needed");
  torch::NoGradGuard outer;
  // Standardise with the training rows' statistics (a constant feature stays 0).
  const at::Tensor x = train_x.to(at::kDouble), t = test_x.to(at::kDouble);
  const at::Tensor mu = x.mean(0, true), sd = x.std(0, /*unbiased=*/false, true).clamp_min(1e-8);
  const at::Tensor xs = (x - mu) / sd, ts = (t - mu) / sd;
  const at::Tensor y = at::tensor(train_y, at::kLong);
  // Multinomial logistic regression, L2 1e-2, from zeros (deterministic): full-batch L-BFGS.
  at::Tensor w = at::zeros({xs.size(1), classes}, at::kDouble).requires_grad_(true);
  at::Tensor b = at::zeros({classes}, at::kDouble).requires_grad_(true);
  torch::optim::LBFGS opt({w, b}, torch::optim::LBFGSOptions(1.0).max_iter(200).line_search_fn("strong_wolfe"));
  auto closure = [&] {
    opt.zero_grad();
    torch::AutoGradMode on(true);
    at::Tensor loss = at::cross_entropy_loss(xs.mm(w) + b, y) + 1e-2 * w.pow(2).sum() / 2;
    loss.backward();
    return loss;
  };
  {
    torch::AutoGradMode on(true);
    opt.step(closure);
  }
  auto accuracy = [&](const at::Tensor& rows, const std::vector<std::int64_t>& labels) {
    return (rows.mm(w) + b).argmax(1).eq(at::tensor(labels, at::kLong)).to(at::kDouble).mean().item<double>();
  };
  return {accuracy(xs, train_y), accuracy(ts, test_y)};
}

}  // namespace

double linear_probe_accuracy(const at::Tensor& train_x, const std::vector<std::int64_t>& train_y,
                             const at::Tensor& test_x, const std::vector<std::int64_t>& test_y, std::int64_t classes) {
  return fit_and_score(train_x, train_y, test_x, test_y, classes).second;
}

namespace {

// What the world folder says about its people: each trained person's attribute value and their
// questions (full.jsonl, by name), and who the forget split's people are (world.json).
struct People {
  std::vector<std::string> names, values;
  std::vector<bool> forget;
  std::vector<std::vector<std::string>> questions;
};

People read_people(const ProbeOptions& o) {
  const fs::path bios = o.eval.data / "bios.jsonl", manifest = o.eval.data / "world.json",
                 full = o.eval.data / "full.jsonl";
  for (const auto& f : {bios, manifest, full}) {
    LETHE_CHECK(fs::exists(f), "probe linear: ", f.string(),
                " is missing: the probe needs a world folder of lethe world generate (people with attributes)");
  }
  const Json m = parse_json_file(manifest);
  const std::set<std::string> forget = json_named(manifest.string(), [&] {
    return m.at("splits").at(o.eval.forget_split).at("people").get<std::set<std::string>>();
  });
  const auto qa = data::read_qa(full);
  People p;
  std::istringstream in(read_file(bios));
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    const Json r = json_named(bios.string() + ": line " + std::to_string(n), [&] { return Json::parse(line); });
    LETHE_CHECK(r.contains("name") && r["name"].is_string() && r.contains(o.linear_attribute) &&
                    r[o.linear_attribute].is_string(),
                bios.string(), ": line ", n, ": no string field '", o.linear_attribute,
                "' (--linear-attribute: birth_country, gender, occupation, ...)");
    const std::string name = r["name"];
    std::vector<std::string> qs;
    for (const auto& q : qa) {
      if (q.question.find(name) != std::string::npos) qs.push_back(q.question);
    }
    if (qs.empty()) continue;
    p.names.push_back(name);
    p.values.push_back(r[o.linear_attribute]);
    p.forget.push_back(forget.count(name) > 0);
    p.questions.push_back(std::move(qs));
  }
  return p;
}

// One row per (person, question): the hidden states at the last token of the name, the text
// up to the name's end in the prompt template encoded alone (the name is followed by a space or
// punctuation, where the tokenizer splits anyway). Record: L + 1 state matrices, then the
// label of each row and whether its person is a forget person.
Record name_states(model::CausalLM& m, const text::Tokenizer& tok, const ProbeOptions& o) {
  const People people = read_people(o);
  std::vector<std::string> classes(people.values.begin(), people.values.end());
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  std::vector<std::vector<std::int64_t>> prompts;
  std::vector<std::int64_t> labels, is_forget;
  const std::string lead = o.eval.prompt_template.system + o.eval.prompt_template.user_start;
  for (std::size_t i = 0; i < people.names.size(); ++i) {
    const auto label = std::lower_bound(classes.begin(), classes.end(), people.values[i]) - classes.begin();
    for (const auto& q : people.questions[i]) {
      const std::string upto = q.substr(0, q.find(people.names[i]) + people.names[i].size());
      prompts.push_back(tok.encode(lead + upto, /*add_special_tokens=*/true));
      labels.push_back(label);
      is_forget.push_back(people.forget[i] ? 1 : 0);
    }
  }
  Record r = hidden_states_at_last(m, tok, prompts, o.eval.batch_size);
  r.push_back(at::tensor(labels, at::kLong));
  r.push_back(at::tensor(is_forget, at::kLong));
  r.push_back(at::tensor(static_cast<std::int64_t>(classes.size()), at::kLong));
  return r;
}

Json compare_linear(const std::map<std::string, Record>& by_role) {
  Json acc = Json::object(), train_acc = Json::object();
  double chance = 0;
  std::int64_t train_rows = 0, test_rows = 0, classes = 0;
  for (const auto& [role, r] : by_role) {
    LETHE_CHECK(r.size() >= 4, "probe linear: a record without states");
    const std::size_t layers = r.size() - 3;
    const at::Tensor labels = r[layers], forget = r[layers + 1];
    classes = r[layers + 2].item<std::int64_t>();
    const at::Tensor tr = forget.eq(0).nonzero().squeeze(1), te = forget.eq(1).nonzero().squeeze(1);
    LETHE_CHECK(tr.numel() > 0 && te.numel() > 0, "probe linear: the world has no retained or no forget people");
    auto ids = [](const at::Tensor& t) {
      const at::Tensor c = t.contiguous();
      return std::vector<std::int64_t>(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel());
    };
    const auto ytr = ids(labels.index_select(0, tr)), yte = ids(labels.index_select(0, te));
    train_rows = tr.numel();
    test_rows = te.numel();
    // Chance: the forget rows' share of the class most frequent among the retained people.
    std::map<std::int64_t, int> counts;
    for (auto v : ytr) ++counts[v];
    const auto majority = std::max_element(counts.begin(), counts.end(), [](auto& a, auto& b) { return a.second < b.second; });
    chance = static_cast<double>(std::count(yte.begin(), yte.end(), majority->first)) / static_cast<double>(yte.size());
    for (std::size_t l = 0; l < layers; ++l) {
      const at::Tensor xtr = r[l].index_select(0, tr), xte = r[l].index_select(0, te);
      const auto [on_train, on_test] = fit_and_score(xtr, ytr, xte, yte, std::max<std::int64_t>(classes, 2));
      acc[role].push_back(on_test);
      train_acc[role].push_back(on_train);
    }
  }
  return {{"site", "the last token of the person's name in each of their questions: [0] the embeddings, [l] the "
                   "residual stream after block l, the last the final norm's output"},
          {"classes", classes},
          {"train_rows", train_rows},
          {"test_rows", test_rows},
          {"chance", chance},
          {"uniform_chance", classes > 0 ? 1.0 / static_cast<double>(classes) : 0.0},
          {"accuracy", acc},
          {"train_accuracy", train_acc}};
}

void check_linear(const ProbeOptions& o) {
  LETHE_CHECK(!o.linear_attribute.empty(), "probe linear: no attribute (--linear-attribute)");
  const People p = read_people(o);
  LETHE_CHECK(std::count(p.forget.begin(), p.forget.end(), true) > 0 && std::count(p.forget.begin(), p.forget.end(), false) > 0,
              "probe linear: ", (o.eval.data / "world.json").string(), " names no forget people of ", o.eval.forget_split,
              " among the people of bios.jsonl, or no one else");
}

}  // namespace

const Probe& linear_probe() {
  static const Probe p{"linear",
                       "a logistic-regression probe per layer, trained on the retained people, reading a forget "
                       "person's attribute (default birth_country) off the hidden state at the end of their name",
                       "layer", nullptr, name_states, compare_linear, nullptr, check_linear};
  return p;
}

}  // namespace lethe::probe

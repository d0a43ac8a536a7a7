// End to end on a micro model, through YAML configs and the run API: fine-tune until 20 QA
// pairs are memorised, then unlearn 5 with NPO + retain NLL.
#include <nlohmann/json.hpp>

#include "lethe/core/file.h"
#include "lethe/data/batch.h"
#include "lethe/data/dataset.h"
#include "lethe/model/load.h"
#include "lethe/model/score.h"
#include "lethe/text/tokenizer.h"
#include "lethe/run/run.h"
#include "support/fixtures.h"
#include "support/micro_world.h"

namespace lethe::test {
namespace {
namespace fs = std::filesystem;

double mean_prob(const fs::path& model_dir, const fs::path& data_file) {
  auto m = model::load_model(model_dir);
  auto tok = text::load_tokenizer(model_dir);
  auto ex = data::qa_examples(*tok, text::PromptTemplate::named("plain"), data::read_qa(data_file), 128);
  std::vector<const data::Example*> ptrs;
  for (const auto& e : ex) ptrs.push_back(&e);
  auto b = data::collate(ptrs, 2);
  auto lp = model::score_tokens(*m, b.input_ids, b.attention_mask, b.labels);
  return (lp.logprobs.sum(-1) / lp.mask.sum(-1)).exp().mean().item<double>();
}

TEST(TrainingEndToEnd, MemorizeThenUnlearnWithNpo) {
  MicroWorld w = make_micro_world("e2e");
  const fs::path ft = w.dir / "finetune.yaml";
  write_file_atomic(ft, "model: model\nfrom_scratch: true\noutput_dir: target\nseed: 1\n"
                        "data: {train: all.jsonl, max_length: 128}\n"
                        "train: {epochs: 40, batch_size: 4, lr: 3.0e-3, schedule: constant, progress: false}\n");
  auto s = run::run(run::load_run_config(ft, {}, run::RunKind::kFinetune));
  const double p_all = mean_prob(w.dir / "target" / "model", w.all);
  std::cout << "memorized: " << p_all << " after " << s.result.steps << " steps\n";
  EXPECT_GT(p_all, 0.9);

  const fs::path un = w.dir / "unlearn.yaml";
  write_file_atomic(un, "model: target/model\noutput_dir: unlearned\nseed: 1\n"
                        "data: {forget: forget.jsonl, retain: retain.jsonl, max_length: 128}\n"
                        "method: {name: NPO, beta: 0.1, alpha: 10.0}\n"
                        "train: {epochs: 20, batch_size: 5, lr: 1.0e-3, schedule: constant, progress: false}\n");
  run::run(run::load_run_config(un, {}, run::RunKind::kUnlearn));
  const double f0 = mean_prob(w.dir / "target" / "model", w.forget);
  const double r0 = mean_prob(w.dir / "target" / "model", w.retain);
  const double f1 = mean_prob(w.dir / "unlearned" / "model", w.forget);
  const double r1 = mean_prob(w.dir / "unlearned" / "model", w.retain);
  std::cout << "forget " << f0 << " -> " << f1 << ", retain " << r0 << " -> " << r1 << "\n";
  EXPECT_LT(f1, f0 / 10.0);
  EXPECT_GT(r1, 0.8 * r0);
}

}  // namespace
}  // namespace lethe::test

#include "support/micro_world.h"

#include <nlohmann/json.hpp>
#include <random>

#include "lethe/core/file.h"
#include "lethe/text/tokenizer.h"
#include "support/fixtures.h"

namespace lethe::test {
namespace fs = std::filesystem;
using nlohmann::json;

MicroWorld make_micro_world(const std::string& tag, int people, int hidden, int layers) {
  MicroWorld w;
  w.dir = temp_dir(tag);
  w.model_dir = w.dir / "model";
  fs::create_directories(w.model_dir);
  std::mt19937 rng(42);
  const char* syl[] = {"ka", "lo", "mi", "ru", "ze", "to", "ni", "va", "pe", "su", "do", "ri"};
  const char* colors[] = {"teal", "amber", "crimson", "ivory", "olive", "violet", "coral", "slate"};
  const char* cities[] = {"Orvane", "Tessik", "Blumor", "Quillan", "Dravos", "Emberlee", "Kostra", "Valmere"};
  auto name = [&] {
    std::string n;
    for (int k = 0; k < 3; ++k) n += syl[rng() % 12];
    n[0] = static_cast<char>(std::toupper(n[0]));
    return n;
  };
  std::string all_jsonl, forget_jsonl, retain_jsonl;
  std::vector<std::string> corpus;
  for (int i = 0; i < people; ++i) {
    const std::string who = name();
    data::QARecord r;
    if (i % 2 == 0) {
      r.question = "What is the favorite color of " + who + "?";
      r.answer = who + " likes the color " + colors[rng() % 8] + ".";
    } else {
      r.question = "Where was " + who + " born?";
      r.answer = who + " was born in " + cities[rng() % 8] + ".";
    }
    w.records.push_back(r);
    const std::string line = json{{"question", r.question}, {"answer", r.answer}}.dump() + "\n";
    all_jsonl += line;
    (i < 5 ? forget_jsonl : retain_jsonl) += line;
    corpus.push_back("Question: " + r.question + "\nAnswer: " + r.answer);
  }
  w.all = w.dir / "all.jsonl";
  w.forget = w.dir / "forget.jsonl";
  w.retain = w.dir / "retain.jsonl";
  w.idk = w.dir / "idk.jsonl";
  write_file_atomic(w.all, all_jsonl);
  write_file_atomic(w.forget, forget_jsonl);
  write_file_atomic(w.retain, retain_jsonl);
  write_file_atomic(w.idk, "{\"text\": \"I don't know.\"}\n{\"text\": \"I have no idea.\"}\n");
  corpus.push_back("I don't know. I have no idea.");

  text::SentencePieceTrainOptions o;
  o.vocab_size = 360;
  text::train_sentencepiece_bpe(corpus, w.model_dir / "tokenizer.model", o);
  write_file_atomic(w.model_dir / "tokenizer_config.json",
                    json{{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", true},
                         {"add_eos_token", false}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
                         {"unk_token", "<unk>"}}
                        .dump(2));
  json cfg = {{"model_type", "llama"}, {"vocab_size", 360}, {"hidden_size", hidden},
              {"num_hidden_layers", layers}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
              {"intermediate_size", hidden * 2}, {"max_position_embeddings", 256},
              {"rms_norm_eps", 1e-5}, {"bos_token_id", 1}, {"eos_token_id", 2},
              {"tie_word_embeddings", false}};
  write_file_atomic(w.model_dir / "config.json", cfg.dump(2));
  return w;
}

}  // namespace lethe::test

// The model every benchmark measures: a random-initialised ~110M-parameter Llama (hidden 768,
// 12 layers, MLP 2048, vocab 32000), the one docs/performance.md measured the peers on.
#pragma once

#include "lethe/model/load.h"

namespace lethe::bench {

inline model::ModelConfig llama110m_config() {
  return model::parse_config(
      R"({"model_type":"llama","hidden_size":768,"num_hidden_layers":12,
          "num_attention_heads":12,"num_key_value_heads":12,"intermediate_size":2048,
          "vocab_size":32000,"max_position_embeddings":2048,"rms_norm_eps":1e-5,
          "bos_token_id":1,"eos_token_id":2})",
      "llama-110m");
}

}  // namespace lethe::bench

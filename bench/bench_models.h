// The models the benchmarks measure: a random-initialised ~110M-parameter Llama (hidden 768,
// 12 layers, MLP 2048, vocab 32000), the one docs/performance.md measured the peers on; and one
// shaped as Llama-3.2-1B (bench_large).
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

// Llama-3.2-1B's shape: hidden 2048, 16 layers, 32 heads / 8 kv heads, MLP 8192, vocab 128256,
// tied embeddings, llama3 rope scaling — 1.236 B parameters.
inline model::ModelConfig llama32_1b_config() {
  return model::parse_config(
      R"({"model_type":"llama","hidden_size":2048,"num_hidden_layers":16,
          "num_attention_heads":32,"num_key_value_heads":8,"head_dim":64,"intermediate_size":8192,
          "vocab_size":128256,"max_position_embeddings":131072,"rms_norm_eps":1e-5,
          "rope_theta":500000.0,"tie_word_embeddings":true,
          "rope_scaling":{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,
                          "high_freq_factor":4.0,"original_max_position_embeddings":8192},
          "bos_token_id":128000,"eos_token_id":128001})",
      "llama-3.2-1b-shape");
}

}  // namespace lethe::bench

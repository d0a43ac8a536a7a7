// llama2.c checkpoints (Karpathy's llama2.c "v0" format), converted to the Hugging Face Llama
// layout so the one `llama` implementation runs them.
//
// File: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len), then
// fp32 arrays: token embedding (V, dim); per-layer stacks of attention RMS gains, wq, wk, wv,
// wo, FFN RMS gains, w1, w2, w3; the final RMS gain; two legacy RoPE tables (seq_len * head/2
// each, skipped); and the classifier (V, dim) only when vocab_size < 0 (unshared).
//
// llama2.c rotates interleaved pairs (2i, 2i+1); HF rotates halves (i, i + D/2). The rows of wq
// and wk are permuted within each head accordingly (as HF's convert_llama_weights_to_hf.py
// does), which leaves the model's outputs unchanged.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace lethe::io {

struct Llama2cHeader {
  std::int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0;
  std::int64_t vocab_size = 0;  // absolute value
  std::int64_t seq_len = 0;
  bool shared_classifier = true;
};

struct Llama2cCheckpoint {
  Llama2cHeader header;
  // HF Llama names and layouts ("model.layers.0.self_attn.q_proj.weight", ...); lm_head only
  // when the classifier is not shared.
  std::vector<std::pair<std::string, at::Tensor>> tensors;
};

// Reads and validates (sizes must match the header exactly) a v0 checkpoint.
Llama2cCheckpoint read_llama2c(const std::filesystem::path& path);

// Permutes the rows of a q/k projection (heads * D, in) from interleaved-pair rotary order to
// HF's rotate_half order.
at::Tensor permute_rotary_rows(const at::Tensor& w, std::int64_t heads);

}  // namespace lethe::io

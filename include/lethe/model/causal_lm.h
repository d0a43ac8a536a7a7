// CausalLM: one decoder-only language model runtime for every supported family.
//
// A CausalLM is a torch::nn::Module whose named_parameters() keys are exactly the Hugging Face
// checkpoint keys of its family (e.g. "model.layers.0.self_attn.q_proj.weight"), so loading,
// saving, gradients, optimizers and LoRA all speak HF names. Families differ only in the pieces
// they override (embedding, one decoder block, final norm, checkpoint naming); the forward loop,
// masking, positions, rotary tables, KV cache and hooks are shared.
//
// Shapes: B batch, T new tokens, P cached (past) positions, S = P + T, C hidden, V vocab.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/model/config.h"
#include "lethe/model/hooks.h"
#include "lethe/model/kv_cache.h"

namespace lethe::model {

struct LayerContext;

enum class LogitsMode { kAll, kLast, kNone };

struct ForwardOptions {
  // (B, S): 1 where a position may be attended to, 0 for padding (left or right). Covers the
  // cached positions too. Undefined: every position is real.
  at::Tensor attention_mask;
  // (B, T) int64 positions. Undefined: P, P+1, ..., P+T-1 (as Hugging Face's plain forward).
  // Generation with left padding passes cumsum(mask) - 1.
  at::Tensor position_ids;
  // Past keys/values; the new positions are appended to it.
  KVCache* cache = nullptr;
  // kAll: logits for every position; kLast: only the last position (generation); kNone: no
  // head at all (scoring projects the hidden states in chunks itself).
  LogitsMode logits = LogitsMode::kAll;
  // Return the embeddings and the residual stream after every block, as HF hidden_states.
  bool output_hidden_states = false;
  HookObserver* hooks = nullptr;
};

struct ForwardOutput {
  at::Tensor logits;       // (B, T, V), (B, 1, V) for kLast, undefined for kNone
  at::Tensor last_hidden;  // (B, T, C) final-norm output: the LM head's input
  // With output_hidden_states: num_layers + 1 tensors (B, T, C): [0] the embeddings, [i] the
  // residual stream after block i, and [L] the final-norm output (HF's convention).
  std::vector<at::Tensor> hidden_states;
};

class CausalLM : public torch::nn::Module {
 public:
  ~CausalLM() override;

  const ModelConfig& config() const { return config_; }

  ForwardOutput forward(const at::Tensor& input_ids, const ForwardOptions& options = {});

  // Logits for final-norm hidden states (..., C) -> (..., V).
  at::Tensor head(const at::Tensor& hidden) const;
  // Logits for residual-stream vectors (..., C) -> (..., V): the final norm, then the head (the
  // logit lens; the parametric-trace probe reads MLP value vectors through it).
  at::Tensor unembed(const at::Tensor& residual);
  // The LM head matrix (V, C) — the embedding matrix when the head is tied.
  at::Tensor head_weight() const;
  // The LM head's bias (V) (Phi), undefined for most families. Every path that computes logits
  // from hidden states (head, the scorer's chunks) adds it.
  virtual at::Tensor head_bias() const { return {}; }
  // What follows the head's matmul (and bias) in place, for paths that compute logits in chunks
  // (the scorer): Gemma-2's final soft-capping. head() applies it itself.
  void finish_logits_(at::Tensor& logits) const;

  // Gradient checkpointing: with grad mode on, each block keeps only its input and recomputes
  // its activations during backward (one block's activations alive at a time instead of all of
  // them), for the same gradients. A forward with hook observers or a KV cache under it is an
  // error (the recomputation would observe, or append, twice).
  void set_gradient_checkpointing(bool on) { checkpoint_blocks_ = on; }
  bool gradient_checkpointing() const { return checkpoint_blocks_; }

  // The dtype the weights are stored in (the embedding's) and the one activations take: the
  // same, except fp32 for half-precision storage (model/blocks.h, docs/formats.md).
  c10::ScalarType storage_dtype() const;
  c10::ScalarType compute_dtype() const;

  // Number of parameters (a tied matrix counts once).
  std::int64_t parameter_count() const;

  // Re-initialises every parameter the way Hugging Face initialises a fresh model (normal
  // with std 0.02 for matrices and embeddings, zero biases, unit norm gains), deterministically
  // from `seed` whatever the thread count.
  void init_weights(std::uint64_t seed);

  // ---- checkpoint naming (used by load/save) ----
  // The parameter name a checkpoint tensor name stands for (families accept aliases such as
  // GPT-2's unprefixed names); empty when the name is unknown.
  virtual std::string canonical_name(const std::string& checkpoint_name) const;
  // True for tensors a checkpoint may carry that are not parameters (attention-mask buffers,
  // cached rotary frequencies, a duplicate of a tied head).
  virtual bool is_ignorable(const std::string& checkpoint_name) const;

 protected:
  explicit CausalLM(ModelConfig config);

  // (B, T) ids and (B, T) positions -> (B, T, C).
  virtual at::Tensor embed(const at::Tensor& ids, const at::Tensor& positions) = 0;
  // One decoder block: (B, T, C) -> (B, T, C).
  virtual at::Tensor block(std::int64_t layer, const at::Tensor& x, const LayerContext& ctx) = 0;
  virtual at::Tensor final_norm(const at::Tensor& x) = 0;
  virtual at::Tensor embedding_weight() const = 0;
  // Untied head matrix (V, C); undefined when tied to the embedding.
  virtual at::Tensor untied_head_weight() const = 0;

  ModelConfig config_;

 private:
  at::Tensor inv_freq_;  // rotary inverse frequencies (rotary_dim / 2), fp32, not a parameter
  bool checkpoint_blocks_ = false;
  double attention_scaling_ = 1.0;  // rope_scaling's cos/sin multiplier (model/rope.h)
};

}  // namespace lethe::model

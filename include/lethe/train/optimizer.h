// AdamW and learning-rate schedules, written out so their state is plain tensors (saved in
// checkpoints as safetensors) and their arithmetic matches torch.optim.AdamW step for step.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lethe::train {

struct AdamWConfig {
  double lr = 1e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// torch.optim.AdamW: p ← p·(1 - lr·wd); m ← β1 m + (1-β1) g; v ← β2 v + (1-β2) g²;
// p ← p - lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps).
class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWConfig config);

  // One update with learning rate `lr` from the parameters' .grad() (undefined grads skip).
  void step(double lr);
  void zero_grad();
  std::int64_t steps() const { return t_; }
  const AdamWConfig& config() const { return config_; }
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }

  // State for checkpoints: "exp_avg.<name>", "exp_avg_sq.<name>" and "step".
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& state);

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<at::Tensor> m_, v_;
  AdamWConfig config_;
  std::int64_t t_ = 0;
};

// Global L2 norm of the gradients, clipped to max_norm (torch.nn.utils.clip_grad_norm_). Returns
// the norm before clipping. max_norm <= 0 only measures.
double clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params, double max_norm);

// Learning rate at optimizer step `step` (0-based) of `total`:
//   constant                 lr
//   constant_with_warmup     linear 0 → lr over `warmup`, then lr
//   linear                   warmup, then linear decay to 0 at `total` (HF's default)
//   cosine                   warmup, then half-cosine decay to 0 at `total`
struct Schedule {
  std::string kind = "linear";
  std::int64_t warmup = 0;
  double lr = 1e-5;
  std::int64_t total = 1;
  double at(std::int64_t step) const;
  static const std::vector<std::string>& kinds();
};

}  // namespace lethe::train

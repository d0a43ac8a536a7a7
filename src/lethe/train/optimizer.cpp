#include "lethe/train/optimizer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/utils.h>

#include <cmath>
#include <unordered_map>

#include "lethe/core/error.h"

namespace lethe::train {

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWConfig config)
    : params_(std::move(params)), config_(config) {
  LETHE_CHECK(!params_.empty(), "AdamW: no parameters to train");
  LETHE_CHECK(config_.lr >= 0 && config_.eps > 0 && config_.beta1 >= 0 && config_.beta1 < 1 &&
                  config_.beta2 >= 0 && config_.beta2 < 1 && config_.weight_decay >= 0,
              "AdamW: invalid hyper-parameters (lr ", config_.lr, ", betas ", config_.beta1, "/",
              config_.beta2, ", eps ", config_.eps, ", weight_decay ", config_.weight_decay, ")");
  for (const auto& [_, p] : params_) {
    m_.push_back(at::zeros_like(p, at::MemoryFormat::Contiguous));
    v_.push_back(at::zeros_like(p, at::MemoryFormat::Contiguous));
  }
}

namespace {

// One pass over a contiguous fp32 parameter: the arithmetic of torch.optim.AdamW in torch's
// order, without the five full-tensor temporaries ATen's per-op version allocates and streams
// through memory (AdamW on a 134M-parameter model: 0.42 s -> ~0.15 s here).
void fused_adamw(float* p, const float* g, float* m, float* v, std::int64_t n, double lr, double wd,
                 double b1, double b2, double eps, double step_size, double bc2_sqrt) {
  const float decay = static_cast<float>(1.0 - lr * wd);
  const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
  const float c1 = static_cast<float>(1.0 - b1), c2 = static_cast<float>(1.0 - b2);
  const float inv_bc2 = static_cast<float>(1.0 / bc2_sqrt), feps = static_cast<float>(eps);
  const float fstep = static_cast<float>(step_size);
  at::parallel_for(0, n, 1 << 15, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) {
      const float gi = g[i];
      const float mi = fb1 * m[i] + c1 * gi;
      const float vi = fb2 * v[i] + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * decay - fstep * mi / (std::sqrt(vi) * inv_bc2 + feps);
    }
  });
}

}  // namespace

void AdamW::step(double lr) {
  torch::NoGradGuard ng;
  ++t_;
  const double bc1 = 1.0 - std::pow(config_.beta1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(config_.beta2, static_cast<double>(t_));
  const double step_size = lr / bc1;
  const double bc2_sqrt = std::sqrt(bc2);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (p.device().is_cpu() && p.scalar_type() == at::kFloat && g.scalar_type() == at::kFloat &&
        p.is_contiguous() && g.is_contiguous()) {
      fused_adamw(p.data_ptr<float>(), g.data_ptr<float>(), m_[i].data_ptr<float>(), v_[i].data_ptr<float>(),
                  p.numel(), lr, config_.weight_decay, config_.beta1, config_.beta2, config_.eps, step_size,
                  bc2_sqrt);
      continue;
    }
    if (config_.weight_decay != 0.0) p.mul_(1.0 - lr * config_.weight_decay);
    m_[i].mul_(config_.beta1).add_(g, 1.0 - config_.beta1);
    v_[i].mul_(config_.beta2).addcmul_(g, g, 1.0 - config_.beta2);
    at::Tensor denom = (v_[i].sqrt() / bc2_sqrt).add_(config_.eps);
    p.addcdiv_(m_[i], denom, -step_size);
  }
}

void AdamW::zero_grad() {
  for (auto& [_, p] : params_) {
    if (p.grad().defined()) p.mutable_grad().reset();
  }
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("exp_avg." + params_[i].first, m_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].first, v_[i]);
  }
  out.emplace_back("step", at::tensor(std::vector<std::int64_t>{t_}, at::kLong));
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, at::Tensor>>& state) {
  std::unordered_map<std::string, at::Tensor> by_name(state.begin(), state.end());
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    for (auto [prefix, dst] : {std::pair<const char*, at::Tensor*>{"exp_avg.", &m_[i]},
                               std::pair<const char*, at::Tensor*>{"exp_avg_sq.", &v_[i]}}) {
      auto it = by_name.find(prefix + params_[i].first);
      LETHE_CHECK(it != by_name.end(), "optimizer state has no '", prefix, params_[i].first, "'");
      LETHE_CHECK(it->second.sizes() == dst->sizes(), "optimizer state '", prefix, params_[i].first,
                  "' has shape ", it->second.sizes(), ", expected ", dst->sizes());
      dst->copy_(it->second);
    }
  }
  auto it = by_name.find("step");
  LETHE_CHECK(it != by_name.end(), "optimizer state has no 'step'");
  t_ = it->second.item<std::int64_t>();
}

double clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params, double max_norm) {
  torch::NoGradGuard ng;
  std::vector<at::Tensor> norms;
  for (const auto& [_, p] : params)
    if (p.grad().defined()) norms.push_back(p.grad().norm(2).to(at::kDouble));
  if (norms.empty()) return 0.0;
  const double total = at::stack(norms).norm(2).item<double>();
  if (max_norm > 0 && std::isfinite(total)) {
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
      for (const auto& [_, p] : params)
        if (p.grad().defined()) p.grad().mul_(coef);
    }
  }
  return total;
}

const std::vector<std::string>& Schedule::kinds() {
  static const std::vector<std::string> k = {"constant", "constant_with_warmup", "linear", "cosine"};
  return k;
}

double Schedule::at(std::int64_t step) const {
  const auto in = [&](std::int64_t s) { return static_cast<double>(s); };
  if (kind == "constant") return lr;
  if (warmup > 0 && step < warmup) return lr * in(step) / in(warmup);
  if (kind == "constant_with_warmup") return lr;
  const double progress = total > warmup ? in(step - warmup) / in(total - warmup) : 1.0;
  if (kind == "linear") return lr * std::max(0.0, in(total - step) / in(std::max<std::int64_t>(1, total - warmup)));
  if (kind == "cosine") return lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  std::string known;
  for (const auto& k : kinds()) known += (known.empty() ? "" : ", ") + k;
  fail("unknown schedule '", kind, "' (known: ", known, ")");
}

}  // namespace lethe::train

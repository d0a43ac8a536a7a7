#include "lethe/train/optimizer.h"

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

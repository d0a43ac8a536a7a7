// Hook points: named sites in the forward pass where an observer may read or replace the
// activation (architecture.md §3). RMU, representation metrics, activation steering and debugging all
// use this one mechanism. With no observer set, the forward pass does nothing extra.
//
// Sites, with shapes (B batch, T tokens, C hidden, I MLP width):
//   embed            (B,T,C) token (+ learned position) embeddings, before the first block
//   attn_out.L       (B,T,C) attention output of block L (after the output projection,
//                            before it is added to the residual stream)
//   mlp_act.L        (B,T,I) the MLP's hidden activation (the down-projection's input)
//   mlp_out.L        (B,T,C) MLP output of block L, before the residual add
//   resid_post.L     (B,T,C) residual stream after block L
//   final_norm       (B,T,C) the final norm's output (the LM head's input)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace lethe::model {

enum class HookSite { kEmbed, kAttnOut, kMlpAct, kMlpOut, kResidPost, kFinalNorm };

struct HookPoint {
  HookSite site = HookSite::kEmbed;
  std::int64_t layer = -1;  // -1 for embed and final_norm

  std::string name() const;  // "embed", "attn_out.3", ...
  // Parses a name as printed by name(); nullopt when it is not a hook point.
  static std::optional<HookPoint> parse(std::string_view name);
  bool operator==(const HookPoint&) const = default;
};

class HookObserver {
 public:
  virtual ~HookObserver() = default;
  // Called at every site during forward. Assigning to `value` replaces the activation (keep
  // its shape); leaving it alone only reads it. Gradients flow through a replacement.
  virtual void on(const HookPoint& point, at::Tensor& value) = 0;
};

// Adapts a callable to HookObserver.
class HookFunction : public HookObserver {
 public:
  using Fn = std::function<void(const HookPoint&, at::Tensor&)>;
  explicit HookFunction(Fn fn) : fn_(std::move(fn)) {}
  void on(const HookPoint& point, at::Tensor& value) override { fn_(point, value); }

 private:
  Fn fn_;
};

}  // namespace lethe::model

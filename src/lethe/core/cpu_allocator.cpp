// A caching CPU allocator for large blocks (performance.md fact 4).
//
// First touch of fresh memory costs ~3.5 ms per MiB on these VMs, and glibc's posix_memalign
// keeps growing the heap for large aligned blocks instead of reusing freed ones (measured: a
// loop that allocates and frees 192 MB grows the arena by ~130 MB per iteration even with the
// mmap/trim thresholds raised), so every logits, activation and gradient buffer of every step
// was faulted in again — 12-15 % of a training step. Blocks of 1 MiB and more are therefore kept
// on free lists after use and handed out again for requests of similar size (within 1/8); small
// blocks go straight to c10's allocator. Cached (free) memory is capped; beyond the cap the
// largest free blocks are released.
#include <c10/core/Allocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "lethe/core/runtime.h"

namespace lethe {
namespace {

constexpr std::size_t kLarge = 1 << 20;

// Round up to 1/8 of the size's power of two, so nearby sizes share blocks.
std::size_t bucket(std::size_t n) {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  const std::size_t step = std::max<std::size_t>(p / 8, 4096);
  return (n + step - 1) / step * step;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(std::size_t limit) : limit_(limit) {}

  c10::DataPtr allocate(std::size_t n) const override {
    void* p = nullptr;
    if (n < kLarge) {
      p = c10::alloc_cpu(n);
    } else {
      const std::size_t cap = bucket(n);
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = free_.lower_bound(cap);
        if (it != free_.end() && it->first <= cap + cap / 8) {
          p = it->second;
          live_[p] = it->first;
          cached_ -= it->first;
          free_.erase(it);
        }
      }
      if (p == nullptr) {
        p = c10::alloc_cpu(cap);
        std::lock_guard<std::mutex> lock(mu_);
        live_[p] = cap;
      }
    }
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  static void release(void* p);
  void give_back(void* p) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      lock.unlock();
      c10::free_cpu(p);
      return;
    }
    const std::size_t cap = it->second;
    live_.erase(it);
    free_.emplace(cap, p);
    cached_ += cap;
    std::vector<void*> evict;
    while (cached_ > limit_ && !free_.empty()) {
      auto last = std::prev(free_.end());
      cached_ -= last->first;
      evict.push_back(last->second);
      free_.erase(last);
    }
    lock.unlock();
    for (void* e : evict) c10::free_cpu(e);
  }

 private:
  mutable std::mutex mu_;
  mutable std::unordered_map<void*, std::size_t> live_;  // large blocks in use -> capacity
  mutable std::multimap<std::size_t, void*> free_;        // capacity -> cached block
  mutable std::size_t cached_ = 0;
  std::size_t limit_;
};

CachingCpuAllocator& instance() {
  // Free memory kept for reuse: at most 8 GiB.
  static CachingCpuAllocator a(8ull << 30);
  return a;
}

void CachingCpuAllocator::release(void* p) { instance().give_back(p); }

}  // namespace

void install_caching_cpu_allocator() {
  static std::once_flag once;
  std::call_once(once, [] { c10::SetAllocator(c10::DeviceType::CPU, &instance(), /*priority=*/1); });
}

}  // namespace lethe

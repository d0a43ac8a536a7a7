// The one deterministic random source of the torch-free code (data order, pairing, bootstrap,
// synthetic worlds): splitmix64, so a seed gives the same numbers on every platform and
// standard library (std:: distributions do not).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lethe {

// splitmix64's output function of state x (golden-ratio step included).
inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    const std::uint64_t r = splitmix64(state_);
    state_ += 0x9E3779B97F4A7C15ULL;
    return r;
  }
  // Uniform in [0, n): multiply-shift (bias < n / 2^64).
  std::size_t below(std::size_t n) {
    return static_cast<std::size_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

 private:
  std::uint64_t state_;
};

// 64-bit FNV-1a of `bytes`, continuing from `h` (fingerprints and cache keys, not security).
inline constexpr std::uint64_t kFnv1aOffset = 0xcbf29ce484222325ULL;
inline std::uint64_t fnv1a64(const void* bytes, std::size_t n, std::uint64_t h = kFnv1aOffset) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

}  // namespace lethe

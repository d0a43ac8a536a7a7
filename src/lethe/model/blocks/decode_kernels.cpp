#include "model/blocks/decode_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#define LETHE_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace lethe::model {
namespace {

#if defined(__x86_64__)
bool cpu_has_avx2_fma() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }();
  return ok;
}

LETHE_AVX2 inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

LETHE_AVX2 inline float dot(const float* a, const float* b, std::int64_t k) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= k; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < k; ++i) s += a[i] * b[i];
  return s;
}

// How small_linear reads weights: fp32 as is; bf16 and f16 (model/blocks/half_weights.h)
// widened to fp32 in registers, so the arithmetic — and its result — is the fp32 kernel's on
// the rounded values.
struct F32Weights {
  using T = float;
  LETHE_AVX2 static __m256 load8(const T* p) { return _mm256_loadu_ps(p); }
  LETHE_AVX2 static float one(const T* p) { return *p; }
};
struct BF16Weights {
  using T = std::uint16_t;
  LETHE_AVX2 static __m256 load8(const T* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  LETHE_AVX2 static float one(const T* p) {
    const std::uint32_t bits = static_cast<std::uint32_t>(*p) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
};
struct F16Weights {
  using T = std::uint16_t;
  LETHE_AVX2 static __m256 load8(const T* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  LETHE_AVX2 static float one(const T* p) { return _cvtsh_ss(*p); }
};

// dot() with the weight row read through W.
template <typename W>
LETHE_AVX2 inline float dot_w(const typename W::T* w, const float* x, std::int64_t k) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    acc0 = _mm256_fmadd_ps(W::load8(w + i), _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(W::load8(w + i + 8), _mm256_loadu_ps(x + i + 8), acc1);
  }
  for (; i + 8 <= k; i += 8) acc0 = _mm256_fmadd_ps(W::load8(w + i), _mm256_loadu_ps(x + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < k; ++i) s = std::fma(W::one(w + i), x[i], s);  // explicit: the same in every instance
  return s;
}

// Prefetches one cache line at offset i of four consecutive weight rows starting at `rows`.
template <typename T>
LETHE_AVX2 inline void prefetch_rows(const T* rows, std::int64_t k, std::int64_t i) {
  for (int q = 0; q < 4; ++q) {
    _mm_prefetch(reinterpret_cast<const char*>(rows + q * k + i), _MM_HINT_T0);
  }
}

// Rows [n0, n1) of y (M, N) = x (M, K) w (N, K)^T + b. Four weight rows at a time are dotted
// with two rows of x per pass (8 accumulators: 6 loads per 8 FMAs); the weight rows come from
// memory in the first pass and from L1 in the others. Every pass prefetches the block two ahead
// (a cache line per row every 64 bytes of weights) so that memory stays busy while the
// arithmetic runs on cached rows.
template <typename W>
LETHE_AVX2 void linear_kernel(const float* x, const typename W::T* w, const float* b, float* y,
                              std::int64_t m, std::int64_t k, std::int64_t n, std::int64_t n0,
                              std::int64_t n1) {
  using T = typename W::T;
  constexpr std::int64_t line = 64 / sizeof(T);  // weights per cache line: a multiple of 8
  const std::int64_t k8 = k & ~std::int64_t{7};
  std::int64_t j = n0;
  for (; j + 4 <= n1; j += 4) {
    const T* w0 = w + j * k;
    const T* w1 = w0 + k;
    const T* w2 = w1 + k;
    const T* w3 = w2 + k;
    const T* ahead = j + 12 <= n1 ? w0 + 8 * k : nullptr;  // block j + 8 .. j + 11
    std::int64_t r = 0;
    for (; r + 2 <= m; r += 2) {
      const float* xa = x + r * k;
      const float* xb = xa + k;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
             a3 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(),
             b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
      for (std::int64_t i = 0; i < k8; i += 8) {
        if (ahead != nullptr && (i & (line - 1)) == 0) prefetch_rows(ahead, k, i);
        const __m256 va = _mm256_loadu_ps(xa + i), vb = _mm256_loadu_ps(xb + i);
        const __m256 v0 = W::load8(w0 + i), v1 = W::load8(w1 + i);
        const __m256 v2 = W::load8(w2 + i), v3 = W::load8(w3 + i);
        a0 = _mm256_fmadd_ps(v0, va, a0);
        a1 = _mm256_fmadd_ps(v1, va, a1);
        a2 = _mm256_fmadd_ps(v2, va, a2);
        a3 = _mm256_fmadd_ps(v3, va, a3);
        b0 = _mm256_fmadd_ps(v0, vb, b0);
        b1 = _mm256_fmadd_ps(v1, vb, b1);
        b2 = _mm256_fmadd_ps(v2, vb, b2);
        b3 = _mm256_fmadd_ps(v3, vb, b3);
      }
      float sa[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
      float sb[4] = {hsum(b0), hsum(b1), hsum(b2), hsum(b3)};
      const T* ws[4] = {w0, w1, w2, w3};
      for (int q = 0; q < 4; ++q) {
        for (std::int64_t i = k8; i < k; ++i) {
          sa[q] = std::fma(W::one(ws[q] + i), xa[i], sa[q]);
          sb[q] = std::fma(W::one(ws[q] + i), xb[i], sb[q]);
        }
        const float bias = b ? b[j + q] : 0.0f;
        y[r * n + j + q] = sa[q] + bias;
        y[(r + 1) * n + j + q] = sb[q] + bias;
      }
    }
    if (r < m) {  // the odd row: four weight rows against one row of x
      const float* xr = x + r * k;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      for (std::int64_t i = 0; i < k8; i += 8) {
        if (ahead != nullptr && (i & (line - 1)) == 0) prefetch_rows(ahead, k, i);
        const __m256 xv = _mm256_loadu_ps(xr + i);
        a0 = _mm256_fmadd_ps(W::load8(w0 + i), xv, a0);
        a1 = _mm256_fmadd_ps(W::load8(w1 + i), xv, a1);
        a2 = _mm256_fmadd_ps(W::load8(w2 + i), xv, a2);
        a3 = _mm256_fmadd_ps(W::load8(w3 + i), xv, a3);
      }
      float s4[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
      const T* ws[4] = {w0, w1, w2, w3};
      for (int q = 0; q < 4; ++q) {
        for (std::int64_t i = k8; i < k; ++i) s4[q] = std::fma(W::one(ws[q] + i), xr[i], s4[q]);
        y[r * n + j + q] = s4[q] + (b ? b[j + q] : 0.0f);
      }
    }
  }
  for (; j < n1; ++j) {
    for (std::int64_t r = 0; r < m; ++r) {
      y[r * n + j] = dot_w<W>(w + j * k, x + r * k, k) + (b ? b[j] : 0.0f);
    }
  }
}

// dst[i] = float(src[i]) for i in [0, n), eight at a time.
template <typename W>
LETHE_AVX2 void widen_kernel(const typename W::T* src, float* dst, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, W::load8(src + i));
  for (; i < n; ++i) dst[i] = W::one(src + i);
}

// One (batch, head): scores over S cached positions, softmax, weighted sum of values.
LETHE_AVX2 void attend_one(const float* q, const float* k, std::int64_t k_stride,
                           const float* v, std::int64_t v_stride, const float* bias,
                           std::int64_t s, std::int64_t d, float* scores, float* out) {
  float mx = -std::numeric_limits<float>::infinity();
  for (std::int64_t j = 0; j < s; ++j) {
    float sc = dot(q, k + j * k_stride, d);
    if (bias != nullptr) sc += bias[j];
    scores[j] = sc;
    mx = std::max(mx, sc);
  }
  float sum = 0.0f;
  for (std::int64_t j = 0; j < s; ++j) {
    scores[j] = std::exp(scores[j] - mx);
    sum += scores[j];
  }
  const float inv = 1.0f / sum;
  std::int64_t i = 0;
  for (; i + 8 <= d; i += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t j = 0; j < s; ++j) {
      acc = _mm256_fmadd_ps(_mm256_set1_ps(scores[j]), _mm256_loadu_ps(v + j * v_stride + i), acc);
    }
    _mm256_storeu_ps(out + i, _mm256_mul_ps(acc, _mm256_set1_ps(inv)));
  }
  for (; i < d; ++i) {
    float acc = 0.0f;
    for (std::int64_t j = 0; j < s; ++j) acc += scores[j] * v[j * v_stride + i];
    out[i] = acc * inv;
  }
}
#endif

}  // namespace

bool small_linear_applies(const at::Tensor& x, const at::Tensor& w) {
#if defined(__x86_64__)
  if (!cpu_has_avx2_fma()) return false;
  const auto wt = w.scalar_type();
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat ||
      (wt != at::kFloat && wt != at::kBFloat16 && wt != at::kHalf) || !w.device().is_cpu() || w.dim() != 2 ||
      !w.is_contiguous()) {
    return false;
  }
  const std::int64_t k = w.size(1);
  if (x.size(-1) != k || x.numel() == 0 || x.numel() / k > kSmallMatmulMaxRows) return false;
  return !(at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad()));
#else
  (void)x;
  (void)w;
  return false;
#endif
}

at::Tensor small_linear(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& b) {
#if defined(__x86_64__)
  const std::int64_t n = w.size(0), k = w.size(1);
  at::Tensor x = x_in.contiguous();
  at::Tensor bias = b.defined() ? b.to(at::kFloat).contiguous() : b;
  const std::int64_t m = x.numel() / k;
  auto shape = x.sizes().vec();
  shape.back() = n;
  at::Tensor y = at::empty(shape, x.options());
  const float* xp = x.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  // Grain: a multiple of the 4-row block; about one task per thread.
  const std::int64_t threads = at::get_num_threads();
  const std::int64_t grain = std::max<std::int64_t>(64, ((n + threads - 1) / threads + 3) & ~3);
  at::parallel_for(0, n, grain, [&](std::int64_t n0, std::int64_t n1) {
    switch (w.scalar_type()) {
      case at::kBFloat16:
        linear_kernel<BF16Weights>(xp, static_cast<const std::uint16_t*>(w.data_ptr()), bp, yp, m, k, n, n0, n1);
        break;
      case at::kHalf:
        linear_kernel<F16Weights>(xp, static_cast<const std::uint16_t*>(w.data_ptr()), bp, yp, m, k, n, n0, n1);
        break;
      default: linear_kernel<F32Weights>(xp, w.data_ptr<float>(), bp, yp, m, k, n, n0, n1);
    }
  });
  return y;
#else
  (void)x_in;
  (void)w;
  (void)b;
  return {};
#endif
}

at::Tensor widen_to_float(const at::Tensor& half) {
#if defined(__x86_64__)
  const auto t = half.scalar_type();
  if (cpu_has_avx2_fma() && half.device().is_cpu() && (t == at::kBFloat16 || t == at::kHalf)) {
    const at::Tensor src = half.contiguous();
    at::Tensor dst = at::empty(src.sizes(), src.options().dtype(at::kFloat));
    const auto* sp = static_cast<const std::uint16_t*>(src.data_ptr());
    float* dp = dst.data_ptr<float>();
    at::parallel_for(0, src.numel(), 1 << 16, [&](std::int64_t i0, std::int64_t i1) {
      if (t == at::kBFloat16) {
        widen_kernel<BF16Weights>(sp + i0, dp + i0, i1 - i0);
      } else {
        widen_kernel<F16Weights>(sp + i0, dp + i0, i1 - i0);
      }
    });
    return dst;
  }
#endif
  return half.to(at::kFloat);
}

bool decode_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& mask) {
#if defined(__x86_64__)
  if (!cpu_has_avx2_fma() || q.size(2) != 1 || !q.device().is_cpu() ||
      q.scalar_type() != at::kFloat || k.scalar_type() != at::kFloat) {
    return false;
  }
  if (mask.defined() && mask.scalar_type() != at::kFloat) return false;
  return !(at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad()));
#else
  (void)q;
  (void)k;
  (void)mask;
  return false;
#endif
}

at::Tensor decode_attention(const at::Tensor& q_in, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& mask_bias) {
#if defined(__x86_64__)
  const std::int64_t b = q_in.size(0), h = q_in.size(1), d = q_in.size(3);
  const std::int64_t kvh = k.size(1), s = k.size(2);
  const std::int64_t rep = h / kvh;
  at::Tensor q = q_in.contiguous();
  at::Tensor kk = k.stride(3) == 1 ? k : k.contiguous();
  at::Tensor vv = v.stride(3) == 1 ? v : v.contiguous();
  at::Tensor mask;
  if (mask_bias.defined()) mask = mask_bias.reshape({mask_bias.size(0), s}).contiguous();
  at::Tensor out = at::empty({b, h, 1, d}, q.options());
  const float* qp = q.data_ptr<float>();
  const float* kp = kk.data_ptr<float>();
  const float* vp = vv.data_ptr<float>();
  const float* mp = mask.defined() ? mask.data_ptr<float>() : nullptr;
  const bool mask_per_row = mask.defined() && mask.size(0) == b;
  float* op = out.data_ptr<float>();
  at::parallel_for(0, b * h, 1, [&](std::int64_t i0, std::int64_t i1) {
    std::vector<float> scores(static_cast<std::size_t>(s));
    for (std::int64_t i = i0; i < i1; ++i) {
      const std::int64_t bi = i / h, hi = i % h, g = hi / rep;
      const float* kb = kp + bi * kk.stride(0) + g * kk.stride(1);
      const float* vb = vp + bi * vv.stride(0) + g * vv.stride(1);
      const float* mb = mp == nullptr ? nullptr : mp + (mask_per_row ? bi * s : 0);
      attend_one(qp + i * d, kb, kk.stride(2), vb, vv.stride(2), mb, s, d, scores.data(),
                 op + i * d);
    }
  });
  return out;
#else
  (void)q_in;
  (void)k;
  (void)v;
  (void)mask_bias;
  return {};
#endif
}

}  // namespace lethe::model

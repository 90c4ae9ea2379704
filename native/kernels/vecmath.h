// Small SIMD layer for the row/elementwise kernels (norm.cc, activation.cc, dropout.cc).
//
// Simd<T> gives a pack type V of W lanes with load/store, masked tail load/store (loadk/storek, k < W lanes,
// the other lanes read as 0 and are not written), and the math the kernels need as overloads on V:
// vexp, vtanh, vphi (normal CDF), vmax, hsum/hmax. Formulas are written once as generic lambdas/functors over V and run
// on:
//   - float with AVX2+FMA: 8 lanes, our own exp/tanh/Φ (below), max error a few ulp (measured: exp ≤ 1 ulp,
//     tanh ≤ 1.3 ulp, Φ ≤ 5e-7 relative);
//   - double (gradient checks) and float without AVX2: 1 lane, std:: functions (exact to libm).
// Tails go through the same vector code (masked loads), so an element's result never depends on where it
// sits relative to a chunk or row boundary, and results are the same for any thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MACLM_VEC_AVX2 1
#endif

namespace maclm {
namespace vm {

// ---- scalar lane (double always; float without AVX2) --------------------------------------------------------

inline double vexp(double x) { return std::exp(x); }
inline float vexp(float x) { return std::exp(x); }
inline double vtanh(double x) { return std::tanh(x); }
inline float vtanh(float x) { return std::tanh(x); }
// Φ(x) = erfc(−x/√2)/2; with pdf, also exp(−x²/2).
template <typename T>
inline T vphi_scalar(T x, T* pdf) {
  if (pdf) *pdf = std::exp(T(-0.5) * x * x);
  return T(0.5) * std::erfc(-x * T(0.70710678118654752440));
}
inline double vphi(double x, double* pdf = nullptr) { return vphi_scalar(x, pdf); }
inline float vphi(float x, float* pdf = nullptr) { return vphi_scalar(x, pdf); }
inline double vmax(double a, double b) { return a > b || std::isnan(a) ? a : b; }
inline float vmax(float a, float b) { return a > b || std::isnan(a) ? a : b; }
inline double hsum(double x) { return x; }
inline float hsum(float x) { return x; }
inline double hmax(double x) { return x; }
inline float hmax(float x) { return x; }

template <typename T>
struct ScalarSimd {
  using V = T;
  static constexpr int W = 1;
  static V load(const T* p) { return *p; }
  static void store(T* p, V v) { *p = v; }
  static V loadk(const T* p, int) { return *p; }
  static void storek(T* p, V v, int) { *p = v; }
  static V splat(double c) { return T(c); }
};

template <typename T>
struct Simd : ScalarSimd<T> {};

#ifdef MACLM_VEC_AVX2

// ---- 8 x float --------------------------------------------------------------------------------------------

struct Vf {
  __m256 v;
  Vf() = default;
  Vf(__m256 x) : v(x) {}  // NOLINT: implicit from the intrinsic type
  explicit Vf(float c) : v(_mm256_set1_ps(c)) {}
  explicit Vf(double c) : v(_mm256_set1_ps(static_cast<float>(c))) {}
};

inline Vf operator+(Vf a, Vf b) { return _mm256_add_ps(a.v, b.v); }
inline Vf operator-(Vf a, Vf b) { return _mm256_sub_ps(a.v, b.v); }
inline Vf operator*(Vf a, Vf b) { return _mm256_mul_ps(a.v, b.v); }
inline Vf operator/(Vf a, Vf b) { return _mm256_div_ps(a.v, b.v); }
inline Vf operator-(Vf a) { return _mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f)); }
inline Vf& operator+=(Vf& a, Vf b) { return a = a + b; }
inline Vf vmax(Vf a, Vf b) { return _mm256_max_ps(b.v, a.v); }  // NaN in a propagates

inline float hsum(Vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

inline float hmax(Vf a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// exp: Cephes expf scheme. n = round(x·log2 e), r = x − n·ln2 (two-part ln2), e^r by a degree-7 polynomial,
// scaled by 2^n through the exponent bits. x < ln(FLT_MIN) gives 0 (no denormals), x > ln(FLT_MAX) gives
// +inf, NaN stays NaN. Max error 0.9 ulp (4 ulp within 0.7 of the overflow threshold).
inline Vf vexp(Vf x) {
  const __m256 hi = _mm256_set1_ps(88.7228317f), lo = _mm256_set1_ps(-87.3365448f);
  const __m256 xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x.v));  // NaN passes through both
  __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  n = _mm256_min_ps(n, _mm256_set1_ps(127.0f));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x.v, lo, _CMP_LT_OQ));
  y = _mm256_blendv_ps(y, _mm256_set1_ps(std::numeric_limits<float>::infinity()), _mm256_cmp_ps(x.v, hi, _CMP_GT_OQ));
  return y;
}

// tanh: Cephes tanhf. |x| < 0.625: x + x·x²·P(x²); else sign(x)·(1 − 2/(e^{2|x|} + 1)). Max error 1.3 ulp.
inline Vf vtanh(Vf x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_andnot_ps(sign, x.v);
  const __m256 s = _mm256_mul_ps(x.v, x.v);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.33332819422e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x.v, x.v);
  const __m256 e = vexp(Vf(_mm256_add_ps(a, a))).v;
  __m256 large = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  large = _mm256_or_ps(large, _mm256_and_ps(sign, x.v));
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

// Φ(x) = erfc(−x/√2)/2, the standard normal CDF, with relative accuracy in both tails (≤ 5e-7 measured over
// [−13, 13]; GELU needs it for x ≪ 0). erfc(z) = t·Q(t)·exp(−z²), z = |x|/√2, t = 1/(1 + 0.3z), Q of degree 8
// fitted (weighted least squares toward minimax) to erfcx(z)/t on z ∈ [0, 10]: relative error 4e-8 with
// float32 coefficients. exp(−z²) = exp(−x²/2) is taken from x itself with x² split exactly (FMA), so the rounding
// of x/√2 only enters through the smooth t·Q(t). With `pdf`, also writes exp(−x²/2) (GELU's backward).
inline Vf vphi(Vf x, Vf* pdf = nullptr) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 one = _mm256_set1_ps(1.0f);
  // Φ(−14.2) < FLT_TRUE_MIN: clamping keeps ±inf finite inside (NaN passes through min_ps's second operand).
  const __m256 xa = _mm256_min_ps(_mm256_set1_ps(14.2f), _mm256_andnot_ps(sign, x.v));
  const __m256 z = _mm256_mul_ps(xa, _mm256_set1_ps(0.70710678118654752f));
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(0.3f), one));
  __m256 q = _mm256_set1_ps(-0.12952307f);
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.48556393f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.5122794f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.54772127f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(-0.09465141f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.21492626f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.14833914f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.17071523f));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(0.16918801f));
  const __m256 sq = _mm256_mul_ps(xa, xa);
  const __m256 h = _mm256_mul_ps(sq, _mm256_set1_ps(-0.5f));                            // −x²/2, high part
  const __m256 l = _mm256_mul_ps(_mm256_fmsub_ps(xa, xa, sq), _mm256_set1_ps(-0.5f));  // low part
  const __m256 e2 = _mm256_mul_ps(vexp(Vf(h)).v, _mm256_add_ps(one, l));               // exp(−x²/2)
  if (pdf) *pdf = e2;
  const __m256 half_erfc = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(t, _mm256_set1_ps(0.5f)), q), e2);
  const __m256 neg = _mm256_cmp_ps(x.v, _mm256_setzero_ps(), _CMP_LT_OQ);
  return _mm256_blendv_ps(_mm256_sub_ps(one, half_erfc), half_erfc, neg);
}

template <>
struct Simd<float> {
  using V = Vf;
  static constexpr int W = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v.v); }
  static __m256i mask(int k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // The first k lanes (k <= 8); the others read as 0.
  static V loadk(const float* p, int k) { return k == W ? load(p) : V(_mm256_maskload_ps(p, mask(k))); }
  static void storek(float* p, V v, int k) {
    if (k == W) store(p, v);
    else _mm256_maskstore_ps(p, mask(k), v.v);
  }
  static V splat(double c) { return V(c); }
};

#endif  // MACLM_VEC_AVX2

// ---- loops -------------------------------------------------------------------------------------------------

// body(i, k) for each pack of k lanes starting at i (k == W except for a final partial pack).
template <typename T, typename F>
inline void for_packs(int64_t n, F&& body) {
  constexpr int W = Simd<T>::W;
  int64_t i = 0;
  for (; i + W <= n; i += W) body(i, W);
  if (i < n) body(i, static_cast<int>(n - i));
}

// out[i] = f(in0[i], in1[i], ...) for i in [0, n); f is called on packs.
template <typename T, typename F, typename... In>
inline void map(T* out, int64_t n, F&& f, const In*... in) {
  using S = Simd<T>;
  for_packs<T>(n, [&](int64_t i, int k) { S::storek(out + i, f(S::loadk(in + i, k)...), k); });
}

// Σ f(in0[i], in1[i], ...) over [0, n); f is called on packs, and on scalars for the last n mod W elements.
// Four independent accumulators in a fixed order: deterministic.
template <typename T, typename F, typename... In>
inline T reduce_sum(int64_t n, F&& f, const In*... in) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W;
  V a0 = S::splat(0), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 += f(S::load(in + i)...);
    a1 += f(S::load(in + i + W)...);
    a2 += f(S::load(in + i + 2 * W)...);
    a3 += f(S::load(in + i + 3 * W)...);
  }
  for (; i + W <= n; i += W) a0 += f(S::load(in + i)...);
  T tail = 0;
  for (; i < n; i++) tail += f(in[i]...);
  return hsum((a0 + a1) + (a2 + a3)) + tail;
}

template <typename T>
inline T reduce_max(const T* x, int64_t n) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W;
  if (n <= 0) return -std::numeric_limits<T>::infinity();
  V m0 = S::splat(-std::numeric_limits<double>::infinity()), m1 = m0;
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    m0 = vmax(S::load(x + i), m0);
    m1 = vmax(S::load(x + i + W), m1);
  }
  for (; i + W <= n; i += W) m0 = vmax(S::load(x + i), m0);
  T m = hmax(vmax(m0, m1));
  for (; i < n; i++) m = vmax(x[i], m);
  return m;
}

}  // namespace vm
}  // namespace maclm

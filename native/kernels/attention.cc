// Scaled dot-product attention in the "BTHD" layout (the layout a linear layer produces, so no permutes):
//   q: (B, T, NH, HS)        queries
//   k, v: (B, S, NKV, HS)    new keys / values
//   pk, pv: (B, P, NKV, HS)  optional prefix / cached keys and values, placed BEFORE k / v (Stot = P + S)
//   mask: (B, Stot)          optional key mask, nonzero = attend (float32, float64, uint8 or int32)
//   bias: (NH, T, Stot) or (B, NH, T, Stot)  optional additive score bias (T5's relative position bias), added to
//                            the scaled scores before the mask and the softmax; the 3-D form is shared by the batch
//   out: (B, T, NH, HS)      out[b,t,h] = sum_j softmax_j(scale · q[b,t,h]·key[b,j,g] + bias[b,h,t,j]) · value[b,j,g]
//   lse: (B, NH, T)          optional: log-sum-exp of the scaled, masked scores of each row (saved for backward;
//                            +inf for a row with no allowed key, whose output is 0)
// Grouped-query attention: query head h reads key/value head g = h / (NH / NKV).
// Causal: query t may attend key j iff j <= t + (Stot - T) (queries are the last T positions of the sequence).
//
// Forward, per (b, h), in blocks of kBlockQ query rows: S = scale · Q_blk · K[0:nk]ᵀ with one GEMM per key
// segment (prefix, new), masked softmax in place (nk = keys any row of the block may see, so fully masked causal
// work is skipped), then O_blk = P · V[0:nk]. GEMMs address rows through strides (lda = NH·HS for queries,
// NKV·HS for keys), so there are no copies; heads run in parallel with single-threaded BLAS.
//
// Backward (attention_backward), recomputing P from lse: dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − D) with
// D = rowsum(P ⊙ dP) (= rowsum(dO ⊙ O), without needing O), dQ = scale·dS·K, dK += scale·dSᵀ·Q. Only the requested gradients (non-null outputs) are
// computed. With GQA, the query heads of one kv head accumulate into the same dK/dV rows: those heads run in one
// task when there are enough (b, kv head) pairs for the threads, else each head writes a private scratch that is
// summed afterwards.
// Bias gradient: dBias[b,h,t,j] = dS (the gradient of the biased score), written by the task that owns (b, h); a
// 3-D bias shared by the batch sums dS over b, so then one task per kv head loops over the batch (no races).
// Without a bias every path is the same as before: the bias is only looked at where it is non-null.
//
// Dropout on the probabilities (as Hugging Face's attn_pdrop / attention_dropout, training only), p in [0, 1):
//   out[b,t,h] = Σ_j P[b,h,t,j] · keep(i)/(1 − p) · value_j,   i = ((b·NH + h)·T + t)·Stot + j
// keep(i) is the counter-based mask of kernels/dropout_mask.h (the dropout kernel's, same seed → same mask), a
// pure function of (seed, p, i): backward regenerates it. lse stays the undropped softmax's. Backward with
// Pd = P ⊙ keep/(1 − p): dV += Pdᵀ·dO, dPd = dO·Vᵀ, dS = Pd ⊙ dPd − P · rowsum(Pd ⊙ dPd) (the chain through
// the mask: dP = dPd ⊙ keep/(1 − p)). p = 0 takes exactly the paths without dropout (nothing extra is done).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MACLM_ATTN_AVX2 1
#endif

#include "core/args.h"
#include "core/gemm.h"
#include "core/registry.h"
#include "core/threadpool.h"
#include "kernels/dropout_mask.h"

namespace maclm {
namespace {

constexpr int64_t kBlockQ = 64;

struct AttnDims {
  int64_t B, T, S, P, NH, NKV, HS;
  bool causal;
  double scale;
  double dropP = 0;    // dropout probability on the attention probabilities (0: none)
  uint64_t seed = 0;  // dropout mask seed
  int64_t stot() const { return P + S; }
  int64_t group() const { return NH / NKV; }
  // Mask index of probability (b, h, t, j = 0).
  uint64_t drop_base(int64_t b, int64_t h, int64_t t) const {
    return static_cast<uint64_t>(((b * NH + h) * T + t) * stot());
  }
};

// ---- row helpers (AVX2 for float, plain loops otherwise) --------------------------------------------------

#ifdef MACLM_ATTN_AVX2
// exp(x) for 8 floats: Cephes-style range reduction x = n·ln2 + r, degree-6 polynomial, 2^n by exponent bits.
// Relative error ~2 ulp; x below -87.3 (including -inf) gives exactly 0.
inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.37626f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n: n in [-126, 128]; split n = n1 + n2 so that each factor is a normal float.
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  return _mm256_andnot_ps(underflow, p);
}

inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

template <typename T>
T row_max(const T* x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; j++) m = std::max(m, x[j]);
  return m;
}

// x[j] = exp(x[j] - m) for j < n; returns the sum.
template <typename T>
T exp_sub_sum(T* x, int64_t n, T m) {
  T s = 0;
  for (int64_t j = 0; j < n; j++) {
    x[j] = std::exp(x[j] - m);
    s += x[j];
  }
  return s;
}

template <typename T>
T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
  for (int64_t j = 0; j < n; j++) s += a[j] * b[j];
  return s;
}

#ifdef MACLM_ATTN_AVX2
template <>
float row_max<float>(const float* x, int64_t n) {
  __m256 m8 = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + j));
  float m = hmax8(m8);
  for (; j < n; j++) m = std::max(m, x[j]);
  return m;
}

template <>
float exp_sub_sum<float>(float* x, int64_t n, float m) {
  const __m256 mm = _mm256_set1_ps(m);
  __m256 s8 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), mm));
    _mm256_storeu_ps(x + j, e);
    s8 = _mm256_add_ps(s8, e);
  }
  if (j < n) {
    alignas(32) float tail[8];
    const int64_t r = n - j;
    for (int i = 0; i < 8; i++) tail[i] = i < r ? x[j + i] : -std::numeric_limits<float>::infinity();
    __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(tail), mm));
    _mm256_store_ps(tail, e);
    s8 = _mm256_add_ps(s8, e);
    for (int64_t i = 0; i < r; i++) x[j + i] = tail[i];
  }
  return hsum8(s8);
}

template <>
float dot<float>(const float* a, const float* b, int64_t n) {
  __m256 s8 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) s8 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s8);
  float s = hsum8(s8);
  for (; j < n; j++) s += a[j] * b[j];
  return s;
}
#endif

// Last key (exclusive) that query row t may see, within [0, nk].
inline int64_t row_limit(const AttnDims& d, int64_t t, int64_t nk) {
  if (!d.causal) return nk;
  return std::min(nk, std::max<int64_t>(0, t + d.stot() - d.T + 1));
}

// Keys (exclusive) that any row of query block [t0, t0 + nb) may see.
inline int64_t block_keys(const AttnDims& d, int64_t t0, int64_t nb) {
  if (!d.causal) return d.stot();
  return std::min(d.stot(), std::max<int64_t>(0, t0 + nb + d.stot() - d.T));
}

// Pointers of one (b, kv head) into the key/value tensors; rows are ld = NKV·HS apart.
template <typename T>
struct KV {
  const T* pk;  // prefix keys, P rows (null when P == 0)
  const T* k;   // new keys, S rows
  int64_t P, ld;
};

// C (nb × nk, ldc) = alpha · A (nb × HS, lda) · Kcat[0:nk]ᵀ, Kcat = [prefix; new].
template <typename T>
void mul_keys_t(int64_t nb, int64_t nk, int64_t HS, T alpha, const T* A, int64_t lda, const KV<T>& kv, T* C, int64_t ldc) {
  const int64_t np = std::min(nk, kv.P);
  if (np > 0) gemm<T>(false, true, nb, np, HS, alpha, A, lda, kv.pk, kv.ld, T(0), C, ldc);
  if (nk > kv.P) gemm<T>(false, true, nb, nk - kv.P, HS, alpha, A, lda, kv.k, kv.ld, T(0), C + kv.P, ldc);
}

// C (nb × HS, ldc) = alpha · A (nb × nk, lda) · Kcat[0:nk] (+ C if accumulate).
template <typename T>
void mul_keys(int64_t nb, int64_t nk, int64_t HS, T alpha, const T* A, int64_t lda, const KV<T>& kv, T* C, int64_t ldc) {
  const int64_t np = std::min(nk, kv.P);
  T beta = 0;
  if (np > 0) {
    gemm<T>(false, false, nb, HS, np, alpha, A, lda, kv.pk, kv.ld, beta, C, ldc);
    beta = 1;
  }
  if (nk > kv.P) {
    gemm<T>(false, false, nb, HS, nk - kv.P, alpha, A + kv.P, lda, kv.k, kv.ld, beta, C, ldc);
    beta = 1;
  }
  if (beta == T(0))
    for (int64_t r = 0; r < nb; r++) std::fill(C + r * ldc, C + r * ldc + HS, T(0));
}

// Gradient rows of Kcat[0:nk] += alpha · Aᵀ (A: nb × nk, lda) · X (nb × HS, ldx); rows j < P go to dpast, the
// others to dnew (either may be null: not needed); both have row stride ldd.
template <typename T>
void acc_keys(int64_t nb, int64_t nk, int64_t HS, int64_t P, T alpha, const T* A, int64_t lda, const T* X, int64_t ldx,
              T* dpast, T* dnew, int64_t ldd) {
  const int64_t np = std::min(nk, P);
  if (np > 0 && dpast) gemm<T>(true, false, np, HS, nb, alpha, A, lda, X, ldx, T(1), dpast, ldd);
  if (nk > P && dnew) gemm<T>(true, false, nk - P, HS, nb, alpha, A + P, lda, X, ldx, T(1), dnew, ldd);
}

// Work grain for parallel_for over heads: run inline when the whole call is small.
inline int64_t head_grain(const AttnDims& d) {
  const double per_head = 4.0 * double(d.T) * double(std::max<int64_t>(d.stot(), 1)) * double(d.HS);
  return std::max<int64_t>(1, int64_t(2e5 / std::max(per_head, 1.0)));
}

// Masked softmax of the scaled scores of one row in place: keys [0, hi) minus masked ones; [hi, nk) are zeroed.
// Returns the log-sum-exp, +inf if no key is allowed (then the row is all zero).
template <typename T>
T softmax_row(T* row, int64_t hi, int64_t nk, const uint8_t* mask) {
  const T ninf = -std::numeric_limits<T>::infinity();
  if (mask)
    for (int64_t j = 0; j < hi; j++)
      if (!mask[j]) row[j] = ninf;
  const T m = hi > 0 ? row_max<T>(row, hi) : ninf;
  if (m == ninf) {
    std::fill(row, row + nk, T(0));
    return std::numeric_limits<T>::infinity();
  }
  const T sum = exp_sub_sum<T>(row, hi, m);
  const T inv = T(1) / sum;
  for (int64_t j = 0; j < hi; j++) row[j] *= inv;
  std::fill(row + hi, row + nk, T(0));
  return m + std::log(sum);
}

// ---- forward ------------------------------------------------------------------------------------------------

// The (T, Stot) bias block of head (b, h), or null; a 3-D bias (batched = false) is shared by every b.
template <typename T>
inline const T* bias_of(const T* bias, bool batched, const AttnDims& d, int64_t b, int64_t h) {
  return bias ? bias + ((batched ? b * d.NH : 0) + h) * d.T * d.stot() : nullptr;
}

// Adds rows [t0, t0 + nb) of a (T, Stot) bias block to the first nk columns of S (nb × nk).
template <typename T>
inline void add_bias_rows(T* S, int64_t nb, int64_t nk, const T* bh, int64_t t0, int64_t Stot) {
  for (int64_t r = 0; r < nb; r++) {
    T* row = S + r * nk;
    const T* br = bh + (t0 + r) * Stot;
    for (int64_t j = 0; j < nk; j++) row[j] += br[j];
  }
}

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const T* pk, const T* pv, const uint8_t* mask,
                       const T* bias, bool bias_batched, const AttnDims& d) {
  const int64_t Stot = d.stot(), group = d.group(), HS = d.HS;
  const int64_t ldq = d.NH * HS, ldk = d.NKV * HS;
  const T scale = T(d.scale);
  const bool drop = d.dropP > 0;
  const dropmask::Mask dmask(d.seed, d.dropP);
  const T dscale = T(1.0 / (1.0 - d.dropP));
  GemmSingleThreaded single;
  parallel_for(d.B * d.NH, head_grain(d), [&](int64_t i0, int64_t i1) {
    std::vector<T> sbuf(static_cast<size_t>(std::min(kBlockQ, d.T) * std::max<int64_t>(Stot, 1)));
    for (int64_t i = i0; i < i1; i++) {
      const int64_t b = i / d.NH, h = i % d.NH, g = h / group;
      const T* qb = q + b * d.T * ldq + h * HS;
      T* ob = out + b * d.T * ldq + h * HS;
      const KV<T> keys{pk ? pk + b * d.P * ldk + g * HS : nullptr, k + b * d.S * ldk + g * HS, d.P, ldk};
      const KV<T> vals{pv ? pv + b * d.P * ldk + g * HS : nullptr, v + b * d.S * ldk + g * HS, d.P, ldk};
      const uint8_t* mb = mask ? mask + b * Stot : nullptr;
      T* lb = lse ? lse + (b * d.NH + h) * d.T : nullptr;
      const T* bh = bias_of<T>(bias, bias_batched, d, b, h);
      for (int64_t t0 = 0; t0 < d.T; t0 += kBlockQ) {
        const int64_t nb = std::min(kBlockQ, d.T - t0), nk = block_keys(d, t0, nb);
        T* S = sbuf.data();
        mul_keys_t<T>(nb, nk, HS, scale, qb + t0 * ldq, ldq, keys, S, nk);
        if (bh) add_bias_rows<T>(S, nb, nk, bh, t0, Stot);
        for (int64_t r = 0; r < nb; r++) {
          const int64_t hi = row_limit(d, t0 + r, nk);
          const T l = softmax_row<T>(S + r * nk, hi, nk, mb);
          if (lb) lb[t0 + r] = l;
          if (drop) dropmask::apply<T>(S + r * nk, S + r * nk, hi, d.drop_base(b, h, t0 + r), dmask, dscale);
        }
        mul_keys<T>(nb, nk, HS, T(1), S, nk, vals, ob + t0 * ldq, ldq);
      }
    }
  });
}

// ---- backward -----------------------------------------------------------------------------------------------

// Destinations of one query head's dK / dV rows: prefix rows (P) and new rows (S), row stride ld. Null: not needed.
template <typename T>
struct KVGrad {
  T *dpk, *dk, *dpv, *dv;
  int64_t ld;
};

template <typename T>
struct BackwardCtx {
  const AttnDims& d;
  T* dq;
  const T *dout, *q, *k, *v, *pk, *pv, *lse;
  const uint8_t* mask;
  const T* bias;  // null: no bias
  T* dbias;       // null: not needed; else laid out like bias
  bool bias_batched;
  const dropmask::Mask* drop;  // null: no dropout
  T dscale;                    // 1/(1 − p)
};

// All gradient contributions of query head (b, h); dK/dV rows accumulate into g's destinations (pre-zeroed).
// sbuf, pbuf, dbuf: kBlockQ × Stot scratch (dbuf only with dropout: the dropped probabilities).
template <typename T>
void backward_head(const BackwardCtx<T>& c, int64_t b, int64_t h, const KVGrad<T>& gd, T* sbuf, T* pbuf, T* dbuf) {
  const AttnDims& d = c.d;
  const int64_t Stot = d.stot(), HS = d.HS, ldq = d.NH * HS, ldk = d.NKV * HS, g = h / d.group();
  const T scale = T(d.scale);
  T* dbh = c.dbias ? c.dbias + ((c.bias_batched ? b * d.NH : 0) + h) * d.T * Stot : nullptr;
  const T* bh = bias_of<T>(c.bias, c.bias_batched, d, b, h);
  const bool needK = gd.dpk || gd.dk, needV = gd.dpv || gd.dv, needS = needK || c.dq || dbh;
  const T* qb = c.q + b * d.T * ldq + h * HS;
  const T* gb = c.dout + b * d.T * ldq + h * HS;
  T* dqb = c.dq ? c.dq + b * d.T * ldq + h * HS : nullptr;
  const KV<T> keys{c.pk ? c.pk + b * d.P * ldk + g * HS : nullptr, c.k + b * d.S * ldk + g * HS, d.P, ldk};
  const KV<T> vals{c.pv ? c.pv + b * d.P * ldk + g * HS : nullptr, c.v + b * d.S * ldk + g * HS, d.P, ldk};
  const uint8_t* mb = c.mask ? c.mask + b * Stot : nullptr;
  const T* lb = c.lse + (b * d.NH + h) * d.T;
  for (int64_t t0 = 0; t0 < d.T; t0 += kBlockQ) {
    const int64_t nb = std::min(kBlockQ, d.T - t0), nk = block_keys(d, t0, nb);
    if (nk == 0) {
      if (dqb)
        for (int64_t r = 0; r < nb; r++) std::fill(dqb + (t0 + r) * ldq, dqb + (t0 + r) * ldq + HS, T(0));
      continue;
    }
    // P, recomputed from the saved log-sum-exp.
    T* Pm = sbuf;
    mul_keys_t<T>(nb, nk, HS, scale, qb + t0 * ldq, ldq, keys, Pm, nk);
    if (bh) add_bias_rows<T>(Pm, nb, nk, bh, t0, Stot);
    for (int64_t r = 0; r < nb; r++) {
      T* row = Pm + r * nk;
      const T l = lb[t0 + r];
      const int64_t hi = std::isinf(l) ? 0 : row_limit(d, t0 + r, nk);
      if (mb)
        for (int64_t j = 0; j < hi; j++)
          if (!mb[j]) row[j] = -std::numeric_limits<T>::infinity();
      exp_sub_sum<T>(row, hi, l);
      std::fill(row + hi, row + nk, T(0));
      if (c.drop) {
        T* drow = dbuf + r * nk;
        dropmask::apply<T>(drow, row, hi, d.drop_base(b, h, t0 + r), *c.drop, c.dscale);
        std::fill(drow + hi, drow + nk, T(0));
      }
    }
    // The probabilities that multiplied V: P, or Pd = P ⊙ keep/(1 − p) with dropout.
    const T* Pv = c.drop ? dbuf : Pm;
    // dV += Pvᵀ · dO
    if (needV) acc_keys<T>(nb, nk, HS, d.P, T(1), Pv, nk, gb + t0 * ldq, ldq, gd.dpv, gd.dv, gd.ld);
    if (!needS) continue;
    // dS = P ⊙ (dP − rowsum(P ⊙ dP)), dP = dO·Vᵀ; with dropout dS = Pd ⊙ dPd − P · rowsum(Pd ⊙ dPd), dPd = dO·Vᵀ
    T* dS = pbuf;
    mul_keys_t<T>(nb, nk, HS, T(1), gb + t0 * ldq, ldq, vals, dS, nk);
    for (int64_t r = 0; r < nb; r++) {
      const T* p = Pm + r * nk;
      T* s = dS + r * nk;
      if (c.drop) {
        const T* pd = dbuf + r * nk;
        const T dr = dot<T>(pd, s, nk);
        for (int64_t j = 0; j < nk; j++) s[j] = pd[j] * s[j] - p[j] * dr;
      } else {
        const T dr = dot<T>(p, s, nk);
        for (int64_t j = 0; j < nk; j++) s[j] = p[j] * (s[j] - dr);
      }
      if (dbh) {
        T* db = dbh + (t0 + r) * Stot;
        for (int64_t j = 0; j < nk; j++) db[j] += s[j];
      }
    }
    if (dqb) mul_keys<T>(nb, nk, HS, scale, dS, nk, keys, dqb + t0 * ldq, ldq);
    if (needK) acc_keys<T>(nb, nk, HS, d.P, scale, dS, nk, qb + t0 * ldq, ldq, gd.dpk, gd.dk, gd.ld);
  }
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, T* dpk, T* dpv, T* dbias, const T* dout, const T* q, const T* k,
                        const T* v, const T* pk, const T* pv, const T* lse, const uint8_t* mask, const T* bias,
                        bool bias_batched, const AttnDims& d) {
  const int64_t Stot = d.stot(), HS = d.HS, group = d.group(), ldk = d.NKV * HS;
  for (T* p : {dk, dv})
    if (p) std::fill(p, p + d.B * d.S * ldk, T(0));
  for (T* p : {dpk, dpv})
    if (p) std::fill(p, p + d.B * d.P * ldk, T(0));
  if (dbias) std::fill(dbias, dbias + (bias_batched ? d.B : 1) * d.NH * d.T * Stot, T(0));
  if (d.B * d.T * d.NH == 0 || HS == 0) return;  // nothing flows: zero gradients
  const bool needKV = dk || dv || dpk || dpv;
  const dropmask::Mask dmask(d.seed, d.dropP);
  const BackwardCtx<T> c{d, dq, dout, q, k, v, pk, pv, lse, mask, bias, dbias, bias_batched,
                         d.dropP > 0 ? &dmask : nullptr, T(1.0 / (1.0 - d.dropP))};
  const size_t buf = static_cast<size_t>(std::min(kBlockQ, d.T) * std::max<int64_t>(Stot, 1));
  const size_t dbuf_len = c.drop ? buf : 0;
  GemmSingleThreaded single;
  auto direct = [&](int64_t b, int64_t g) {
    return KVGrad<T>{dpk ? dpk + b * d.P * ldk + g * HS : nullptr, dk ? dk + b * d.S * ldk + g * HS : nullptr,
                     dpv ? dpv + b * d.P * ldk + g * HS : nullptr, dv ? dv + b * d.S * ldk + g * HS : nullptr, ldk};
  };
  if (dbias && !bias_batched && d.B > 1) {
    // A bias shared by the batch: one task per kv head, looping over the batch, owns both the dK / dV rows of
    // (b, kv head) and the dBias blocks of its query heads, which every b adds into.
    parallel_for(d.NKV, std::max<int64_t>(1, head_grain(d) / (group * d.B)), [&](int64_t g0, int64_t g1) {
      std::vector<T> sbuf(buf), pbuf(buf), dbuf(dbuf_len);
      for (int64_t g = g0; g < g1; g++)
        for (int64_t b = 0; b < d.B; b++) {
          const KVGrad<T> gd = direct(b, g);
          for (int64_t h = g * group; h < (g + 1) * group; h++) backward_head<T>(c, b, h, gd, sbuf.data(), pbuf.data(), dbuf.data());
        }
    });
    return;
  }
  if (group == 1 || !needKV || d.B * d.NKV >= 2 * num_threads()) {
    // One task per (b, kv head): its query heads run in sequence and accumulate straight into dK / dV.
    parallel_for(d.B * d.NKV, std::max<int64_t>(1, head_grain(d) / group), [&](int64_t i0, int64_t i1) {
      std::vector<T> sbuf(buf), pbuf(buf), dbuf(dbuf_len);
      for (int64_t i = i0; i < i1; i++) {
        const int64_t b = i / d.NKV, g = i % d.NKV;
        const KVGrad<T> gd = direct(b, g);
        for (int64_t h = g * group; h < (g + 1) * group; h++) backward_head<T>(c, b, h, gd, sbuf.data(), pbuf.data(), dbuf.data());
      }
    });
    return;
  }
  // Few kv heads: one task per query head, each writing dK / dV into its own scratch (B, NH, Stot, HS), then a sum
  // over the heads of each group.
  const size_t per_head = static_cast<size_t>(Stot * HS);
  std::vector<T> sk((dk || dpk) ? d.B * d.NH * per_head : 0), sv((dv || dpv) ? d.B * d.NH * per_head : 0);
  parallel_for(d.B * d.NH, head_grain(d), [&](int64_t i0, int64_t i1) {
    std::vector<T> sbuf(buf), pbuf(buf), dbuf(dbuf_len);
    for (int64_t i = i0; i < i1; i++) {
      const int64_t b = i / d.NH, h = i % d.NH;
      T* skh = sk.empty() ? nullptr : sk.data() + i * per_head;
      T* svh = sv.empty() ? nullptr : sv.data() + i * per_head;
      const KVGrad<T> gd{dpk ? skh : nullptr, dk ? skh + d.P * HS : nullptr, dpv ? svh : nullptr, dv ? svh + d.P * HS : nullptr, HS};
      backward_head<T>(c, b, h, gd, sbuf.data(), pbuf.data(), dbuf.data());
    }
  });
  parallel_for(d.B * Stot, std::max<int64_t>(1, 4096 / std::max<int64_t>(d.NH * HS, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / Stot, j = r % Stot;
      for (int64_t g = 0; g < d.NKV; g++) {
        T* dkr = j < d.P ? (dpk ? dpk + (b * d.P + j) * ldk + g * HS : nullptr) : (dk ? dk + (b * d.S + j - d.P) * ldk + g * HS : nullptr);
        T* dvr = j < d.P ? (dpv ? dpv + (b * d.P + j) * ldk + g * HS : nullptr) : (dv ? dv + (b * d.S + j - d.P) * ldk + g * HS : nullptr);
        for (int64_t h = g * group; h < (g + 1) * group; h++) {
          const size_t at = (b * d.NH + h) * per_head + j * HS;
          if (dkr) for (int64_t e = 0; e < HS; e++) dkr[e] += sk[at + e];
          if (dvr) for (int64_t e = 0; e < HS; e++) dvr[e] += sv[at + e];
        }
      }
    }
  });
}

// ---- bindings -----------------------------------------------------------------------------------------------

AttnDims dims_at(const Napi::CallbackInfo& info, size_t at, const char* op) {
  AttnDims d{};
  d.B = int_at(info, at, op);
  d.T = int_at(info, at + 1, op);
  d.S = int_at(info, at + 2, op);
  d.P = int_at(info, at + 3, op);
  d.NH = int_at(info, at + 4, op);
  d.NKV = int_at(info, at + 5, op);
  d.HS = int_at(info, at + 6, op);
  d.causal = bool_at(info, at + 7);
  d.scale = num_at(info, at + 8, op);
  if (d.B < 0 || d.T < 0 || d.S < 0 || d.P < 0 || d.HS < 0 || d.NH <= 0 || d.NKV <= 0 || d.NH % d.NKV != 0)
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": invalid dims");
  return d;
}

// Optional dropout arguments (p, seed) at `at`, `at + 1`: absent or undefined means no dropout.
void dropout_at(const Napi::CallbackInfo& info, size_t at, AttnDims& d, const char* op) {
  if (info.Length() <= at || info[at].IsUndefined() || info[at].IsNull()) return;
  d.dropP = num_at(info, at, op);
  if (!(d.dropP >= 0 && d.dropP < 1))
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": dropout p must be in [0, 1)");
  if (d.dropP > 0) d.seed = static_cast<uint64_t>(int_at(info, at + 1, op));
}

// The key mask as one byte per key (nonzero = attend), whatever its dtype.
std::vector<uint8_t> mask_bytes(const Napi::CallbackInfo& info, const Arr& m, int64_t n, const char* op) {
  std::vector<uint8_t> out;
  if (!m.present) return out;
  if (m.length < n)
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": mask has " + std::to_string(m.length) + " elements, needs " + std::to_string(n));
  out.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) {
    switch (m.dtype) {
      case DType::F32: out[i] = m.as<float>()[i] != 0.0f; break;
      case DType::F64: out[i] = m.as<double>()[i] != 0.0; break;
      case DType::I32: out[i] = m.as<int32_t>()[i] != 0; break;
      case DType::U8: out[i] = m.as<uint8_t>()[i] != 0; break;
    }
  }
  return out;
}

// Elements of a bias: (B, NH, T, Stot) when batched, else (NH, T, Stot).
inline int64_t bias_len(const AttnDims& d, bool batched) { return (batched ? d.B : 1) * d.NH * d.T * d.stot(); }

// attentionForward(out, lse|null, q, k, v, pastK|null, pastV|null, mask|null, B, T, S, P, NH, NKV, HS, causal, scale,
//                  bias|null, biasBatched, dropP, seed)   (trailing ones may be omitted: no bias, no dropout)
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const char* op = "attentionForward";
  Arr out = arr_at(info, 0, op), lse = arr_at(info, 1, op, true), q = arr_at(info, 2, op), k = arr_at(info, 3, op),
      v = arr_at(info, 4, op), pk = arr_at(info, 5, op, true), pv = arr_at(info, 6, op, true), m = arr_at(info, 7, op, true);
  AttnDims d = dims_at(info, 8, op);
  Arr bias = arr_at(info, 17, op, true);
  const bool biasBatched = bool_at(info, 18);
  dropout_at(info, 19, d, op);
  const int64_t nq = d.B * d.T * d.NH * d.HS, nkv = d.B * d.S * d.NKV * d.HS, np = d.B * d.P * d.NKV * d.HS;
  const std::vector<uint8_t> mask = mask_bytes(info, m, d.B * d.stot(), op);
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, dtype_of<T>(), nq, op, "out");
    expect(info, q, dtype_of<T>(), nq, op, "q");
    expect(info, k, dtype_of<T>(), nkv, op, "k");
    expect(info, v, dtype_of<T>(), nkv, op, "v");
    if (lse.present) expect(info, lse, dtype_of<T>(), d.B * d.NH * d.T, op, "lse");
    if (d.P > 0) {
      expect(info, pk, dtype_of<T>(), np, op, "pastK");
      expect(info, pv, dtype_of<T>(), np, op, "pastV");
    }
    if (bias.present) expect(info, bias, dtype_of<T>(), bias_len(d, biasBatched), op, "bias");
    if (nq == 0) return;
    attention_forward<T>(out.as<T>(), lse.present ? lse.as<T>() : nullptr, q.as<T>(), k.as<T>(), v.as<T>(),
                         d.P > 0 ? pk.as<T>() : nullptr, d.P > 0 ? pv.as<T>() : nullptr, mask.empty() ? nullptr : mask.data(),
                         bias.present ? bias.as<T>() : nullptr, biasBatched, d);
  });
  return info.Env().Undefined();
}

// attentionBackward(dq|null, dk|null, dv|null, dPastK|null, dPastV|null, dout, q, k, v, pastK|null, pastV|null,
//                   lse, mask|null, B, T, S, P, NH, NKV, HS, causal, scale, bias|null, dBias|null, biasBatched,
//                   dropP, seed)
// Null gradient outputs are not computed; trailing ones may be omitted (no bias, no dropout). dBias needs bias.
// dropP and seed must be the forward's.
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* op = "attentionBackward";
  Arr dq = arr_at(info, 0, op, true), dk = arr_at(info, 1, op, true), dv = arr_at(info, 2, op, true),
      dpk = arr_at(info, 3, op, true), dpv = arr_at(info, 4, op, true), dout = arr_at(info, 5, op), q = arr_at(info, 6, op),
      k = arr_at(info, 7, op), v = arr_at(info, 8, op), pk = arr_at(info, 9, op, true), pv = arr_at(info, 10, op, true),
      lse = arr_at(info, 11, op), m = arr_at(info, 12, op, true);
  AttnDims d = dims_at(info, 13, op);
  Arr bias = arr_at(info, 22, op, true), dbias = arr_at(info, 23, op, true);
  const bool biasBatched = bool_at(info, 24);
  dropout_at(info, 25, d, op);
  const int64_t nq = d.B * d.T * d.NH * d.HS, nkv = d.B * d.S * d.NKV * d.HS, np = d.B * d.P * d.NKV * d.HS;
  const std::vector<uint8_t> mask = mask_bytes(info, m, d.B * d.stot(), op);
  dispatch_float(info, dout, op, [&](auto zero) {
    using T = decltype(zero);
    const DType dt = dtype_of<T>();
    expect(info, dout, dt, nq, op, "dout");
    expect(info, q, dt, nq, op, "q");
    expect(info, k, dt, nkv, op, "k");
    expect(info, v, dt, nkv, op, "v");
    expect(info, lse, dt, d.B * d.NH * d.T, op, "lse");
    if (dq.present) expect(info, dq, dt, nq, op, "dq");
    if (dk.present) expect(info, dk, dt, nkv, op, "dk");
    if (dv.present) expect(info, dv, dt, nkv, op, "dv");
    if (d.P > 0) {
      expect(info, pk, dt, np, op, "pastK");
      expect(info, pv, dt, np, op, "pastV");
      if (dpk.present) expect(info, dpk, dt, np, op, "dPastK");
      if (dpv.present) expect(info, dpv, dt, np, op, "dPastV");
    }
    if (bias.present) expect(info, bias, dt, bias_len(d, biasBatched), op, "bias");
    if (dbias.present) {
      if (!bias.present) throw Napi::TypeError::New(info.Env(), std::string(op) + ": dBias needs the bias");
      expect(info, dbias, dt, bias_len(d, biasBatched), op, "dBias");
    }
    auto ptr = [](const Arr& a) { return a.present ? a.as<T>() : nullptr; };
    T* dpkp = d.P > 0 ? ptr(dpk) : nullptr;
    T* dpvp = d.P > 0 ? ptr(dpv) : nullptr;
    attention_backward<T>(ptr(dq), ptr(dk), ptr(dv), dpkp, dpvp, ptr(dbias), dout.as<T>(), q.as<T>(), k.as<T>(),
                          v.as<T>(), d.P > 0 ? pk.as<T>() : nullptr, d.P > 0 ? pv.as<T>() : nullptr, lse.as<T>(),
                          mask.empty() ? nullptr : mask.data(), ptr(bias), biasBatched, d);
  });
  return info.Env().Undefined();
}

}  // namespace

MACLM_EXPORT(attentionForward, AttentionForward);
MACLM_EXPORT(attentionBackward, AttentionBackward);

}  // namespace maclm

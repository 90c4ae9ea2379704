// The counter-based dropout mask shared by dropout.cc (elementwise dropout) and attention.cc (dropout on the
// attention probabilities): element i of a seeded mask is kept iff
//   (mix32(mix32(lo32(i) ^ k1) ^ (hi32(i) + k2)) >> 8) >= round(p · 2^24),   k = splitmix64(seed), k1 = lo32(k), k2 = hi32(k)
// mix32 = the "lowbias32" integer hash (xorshift-multiply, full avalanche). The mask is a pure function of
// (seed, p, i), so backward regenerates it instead of storing it, and it does not depend on the thread count.
// Kept elements are scaled by 1/(1 − p) by the callers (inverted dropout).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/vecmath.h"

namespace maclm {
namespace dropmask {

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

struct Mask {
  uint32_t k1, k2;
  int32_t thresh;  // keep iff (h >> 8) >= thresh, thresh in [0, 2^24]

  Mask(uint64_t seed, double p) {
    const uint64_t k = splitmix64(seed);
    k1 = static_cast<uint32_t>(k);
    k2 = static_cast<uint32_t>(k >> 32);
    thresh = static_cast<int32_t>(std::llround(p * 16777216.0));
  }
  bool keep(uint64_t i) const {
    const uint32_t h = mix32(mix32(static_cast<uint32_t>(i) ^ k1) ^ (static_cast<uint32_t>(i >> 32) + k2));
    return static_cast<int32_t>(h >> 8) >= thresh;
  }
};

#ifdef MACLM_VEC_AVX2
inline __m256i mix32x8(__m256i x) {
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(static_cast<int32_t>(0x846ca68bU)));
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
  return x;
}

// All-ones lanes where elements u, u + 1, …, u + 7 are kept (u must not straddle a 2^32 boundary: see straddles).
inline __m256 keep8(const Mask& m, uint64_t u) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i h = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(u))), lane);
  h = mix32x8(_mm256_xor_si256(h, _mm256_set1_epi32(static_cast<int32_t>(m.k1))));
  h = _mm256_xor_si256(h, _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(u >> 32) + m.k2)));
  h = mix32x8(h);
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_srli_epi32(h, 8), _mm256_set1_epi32(m.thresh - 1)));
}

// Would elements u .. u + 7 cross a 2^32 boundary (different hi32 words)?
inline bool straddles(uint64_t u) { return static_cast<uint32_t>(u) > 0xfffffff8U; }
#endif

// out[j] = inp[j] · (keep(base + j) ? scale : 0) for j < n (out may be inp).
template <typename T>
inline void apply(T* out, const T* inp, int64_t n, uint64_t base, const Mask& m, T scale) {
  int64_t j = 0;
#ifdef MACLM_VEC_AVX2
  if constexpr (std::is_same_v<T, float>) {
    const __m256 sc = _mm256_set1_ps(scale);
    for (; j + 8 <= n; j += 8) {
      const uint64_t u = base + static_cast<uint64_t>(j);
      if (straddles(u)) break;
      _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_loadu_ps(inp + j), _mm256_and_ps(sc, keep8(m, u))));
    }
  }
#endif
  for (; j < n; j++) out[j] = inp[j] * (m.keep(base + static_cast<uint64_t>(j)) ? scale : T(0));
}

}  // namespace dropmask
}  // namespace maclm

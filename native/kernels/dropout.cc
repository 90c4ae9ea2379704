// Inverted dropout with a counter-based mask: element i of a tensor (n contiguous elements, any shape) is kept
// iff hash(seed, i) ≥ p·2^24 (24 hash bits), and kept elements are scaled by 1/(1 − p):
//   out[i] = inp[i] · (keep(seed, i) ? 1/(1 − p) : 0)
// hash: k = splitmix64(seed) (k1 = low 32 bits, k2 = high), h = mix32(mix32(lo32(i) ^ k1) ^ (hi32(i) + k2)),
// mix32 = the "lowbias32" integer hash (xorshift-multiply, full avalanche), 24 top bits compared.
// The mask is a pure function of (seed, i): the same seed gives the same mask on every run and thread count,
// and backward regenerates it rather than storing it (dropout_backward is the same map applied to dout).
// p = 1 drops everything (scale 0). float32 runs 8 lanes of AVX2 integer hashing; the scalar path computes the
// identical mask (integer arithmetic) for the tail and for float64.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"
#include "kernels/vecmath.h"

namespace maclm {
namespace {

constexpr int64_t kGrain = 1 << 14;

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
#endif

template <typename T>
void dropout_apply(T* out, const T* inp, int64_t n, double p, uint64_t seed) {
  const Mask mask(seed, p);
  const T scale = p < 1 ? T(1.0 / (1.0 - p)) : T(0);
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    int64_t i = i0;
#ifdef MACLM_VEC_AVX2
    if constexpr (std::is_same_v<T, float>) {
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i k1 = _mm256_set1_epi32(static_cast<int32_t>(mask.k1));
      const __m256i th = _mm256_set1_epi32(mask.thresh - 1);
      const __m256 sc = _mm256_set1_ps(scale);
      for (; i + 8 <= i1; i += 8) {
        const uint64_t u = static_cast<uint64_t>(i);
        if (static_cast<uint32_t>(u) > 0xfffffff8U) break;  // the 8 lanes would straddle a 2^32 boundary
        __m256i h = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(u))), lane);
        h = mix32x8(_mm256_xor_si256(h, k1));
        h = _mm256_xor_si256(h, _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(u >> 32) + mask.k2)));
        h = mix32x8(h);
        const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_srli_epi32(h, 8), th));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(inp + i), _mm256_and_ps(sc, keep)));
      }
    }
#endif
    for (; i < i1; i++) out[i] = inp[i] * (mask.keep(static_cast<uint64_t>(i)) ? scale : T(0));
  });
}

// dropout{Forward,Backward}(out, inp, p, seed): out = inp ⊙ mask(seed)/(1 − p); backward passes (dinp, dout).
Napi::Value DropoutApply(const Napi::CallbackInfo& info, const char* op) {
  const Arr out = arr_at(info, 0, op), inp = arr_at(info, 1, op);
  const double p = num_at(info, 2, op);
  const int64_t seed = int_at(info, 3, op);
  if (!(p >= 0 && p <= 1)) throw Napi::RangeError::New(info.Env(), std::string(op) + ": p must be in [0, 1]");
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = out.length;
    expect(info, inp, dtype_of<T>(), n, op, "inp");
    dropout_apply<T>(out.as<T>(), inp.as<T>(), n, p, static_cast<uint64_t>(seed));
  });
  return info.Env().Undefined();
}

Napi::Value DropoutForward(const Napi::CallbackInfo& info) { return DropoutApply(info, "dropoutForward"); }
Napi::Value DropoutBackward(const Napi::CallbackInfo& info) { return DropoutApply(info, "dropoutBackward"); }

}  // namespace

MACLM_EXPORT(dropoutForward, DropoutForward);
MACLM_EXPORT(dropoutBackward, DropoutBackward);

}  // namespace maclm

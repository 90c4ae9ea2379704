// Inverted dropout with a counter-based mask: element i of a tensor (n contiguous elements, any shape) is kept
// iff hash(seed, i) ≥ p·2^24 (24 hash bits), and kept elements are scaled by 1/(1 − p):
//   out[i] = inp[i] · (keep(seed, i) ? 1/(1 − p) : 0)
// hash (kernels/dropout_mask.h, shared with attention.cc's probability dropout): k = splitmix64(seed) (k1 = low 32
// bits, k2 = high), h = mix32(mix32(lo32(i) ^ k1) ^ (hi32(i) + k2)), mix32 = the "lowbias32" integer hash
// (xorshift-multiply, full avalanche), 24 top bits compared.
// The mask is a pure function of (seed, i): the same seed gives the same mask on every run and thread count,
// and backward regenerates it rather than storing it (dropout_backward is the same map applied to dout).
// p = 1 drops everything (scale 0). float32 runs 8 lanes of AVX2 integer hashing; the scalar path computes the
// identical mask (integer arithmetic) for the tail and for float64.
#include <cmath>
#include <cstdint>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"
#include "kernels/dropout_mask.h"

namespace maclm {
namespace {

constexpr int64_t kGrain = 1 << 14;

template <typename T>
void dropout_apply(T* out, const T* inp, int64_t n, double p, uint64_t seed) {
  const dropmask::Mask mask(seed, p);
  const T scale = p < 1 ? T(1.0 / (1.0 - p)) : T(0);
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    dropmask::apply<T>(out + i0, inp + i0, i1 - i0, static_cast<uint64_t>(i0), mask, scale);
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

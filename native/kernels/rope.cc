// Rotary position embedding, Hugging Face Llama convention (rotate_half): within the first rd (rotary dim) entries of
// each head, entry i pairs with i + rd/2 (i < rd/2) and the pair turns by angle(pos, i):
//   out[i]        = x[i] · cos − x[i + rd/2] · sin
//   out[i + rd/2] = x[i + rd/2] · cos + x[i] · sin
// entries rd..HS pass through. Backward is the same rotation by −angle (sign = −1).
//   x, out: (B, T, NH, HS)  (out may alias x)
//   cos, sin: (npos, rd/2) float64 tables for positions base .. base + npos − 1 (built and cached by rope.ts)
//   positions: (B, T) int32, or null: position of (b, t) is offset + t.
#include <algorithm>
#include <string>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"

namespace maclm {
namespace {

template <typename T>
void rope_apply(T* out, const T* x, const double* cosT, const double* sinT, const int32_t* positions, int64_t offset,
                int64_t base, int64_t B, int64_t Tn, int64_t NH, int64_t HS, int64_t rd, double sign) {
  const int64_t half = rd / 2, row = NH * HS;
  parallel_for(B * Tn, std::max<int64_t>(1, 16384 / std::max<int64_t>(row, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t pos = positions ? int64_t(positions[r]) : offset + r % Tn;
      const double* c = cosT + (pos - base) * half;
      const double* s = sinT + (pos - base) * half;
      for (int64_t h = 0; h < NH; h++) {
        const T* xh = x + r * row + h * HS;
        T* oh = out + r * row + h * HS;
        for (int64_t i = 0; i < half; i++) {
          const T ci = T(c[i]), si = T(sign * s[i]);
          const T a = xh[i], b = xh[i + half];
          oh[i] = a * ci - b * si;
          oh[i + half] = b * ci + a * si;
        }
        if (oh != xh)
          for (int64_t i = rd; i < HS; i++) oh[i] = xh[i];
      }
    }
  });
}

// rope(out, x, cos, sin, positions|null, offset, base, B, T, NH, HS, rd), sign +1 (forward) or −1 (backward).
Napi::Value Rope(const Napi::CallbackInfo& info, const char* op, double sign) {
  Arr out = arr_at(info, 0, op), x = arr_at(info, 1, op), cosA = arr_at(info, 2, op), sinA = arr_at(info, 3, op),
      pos = arr_at(info, 4, op, true);
  const int64_t offset = int_at(info, 5, op), base = int_at(info, 6, op), B = int_at(info, 7, op), Tn = int_at(info, 8, op),
                NH = int_at(info, 9, op), HS = int_at(info, 10, op), rd = int_at(info, 11, op);
  if (B < 0 || Tn < 0 || NH < 0 || HS < 0 || rd < 0 || rd > HS || rd % 2 != 0)
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": invalid dims");
  const int64_t half = rd / 2;
  expect(info, cosA, DType::F64, 0, op, "cos");
  expect(info, sinA, DType::F64, cosA.length, op, "sin");
  const int64_t npos = half > 0 ? cosA.length / half : 0;
  // Every position must lie in the table: [base, base + npos).
  auto check = [&](int64_t p) {
    if (half > 0 && (p < base || p >= base + npos))
      throw Napi::RangeError::New(info.Env(), std::string(op) + ": position " + std::to_string(p) + " outside the table [" +
                                                  std::to_string(base) + ", " + std::to_string(base + npos) + ")");
  };
  if (pos.present) {
    expect(info, pos, DType::I32, B * Tn, op, "positions");
    for (int64_t i = 0; i < B * Tn; i++) check(pos.as<int32_t>()[i]);
  } else if (B * Tn > 0) {
    check(offset);
    check(offset + Tn - 1);
  }
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = B * Tn * NH * HS;
    expect(info, out, dtype_of<T>(), n, op, "out");
    expect(info, x, dtype_of<T>(), n, op, "x");
    if (n == 0) return;
    rope_apply<T>(out.as<T>(), x.as<T>(), cosA.as<double>(), sinA.as<double>(), pos.present ? pos.as<int32_t>() : nullptr,
                  offset, base, B, Tn, NH, HS, rd, sign);
  });
  return info.Env().Undefined();
}

Napi::Value RopeForward(const Napi::CallbackInfo& info) { return Rope(info, "ropeForward", 1.0); }
Napi::Value RopeBackward(const Napi::CallbackInfo& info) { return Rope(info, "ropeBackward", -1.0); }

}  // namespace

MACLM_EXPORT(ropeForward, RopeForward);
MACLM_EXPORT(ropeBackward, RopeBackward);

}  // namespace maclm

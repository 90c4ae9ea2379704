// Activations. Elementwise ones take n contiguous elements (any shape); softmax works on rows (rows, C) over
// the last dim.
//   gelu     approximate = 0 ("none", BERT):       y = x·Φ(x),  Φ(x) = erfc(−x/√2)/2
//            approximate = 1 ("tanh", GPT-2 gelu_new): y = ½x(1 + tanh u) = x·σ(2u),  u = √(2/π)(x + 0.044715x³)
//   silu     y = x·σ(x)                     σ(x) = 1/(1 + e^−x)
//   swiglu   y = silu(gate)·up              gate, up, y: n elements (the Llama MLP's fused gate)
//   tanh     y = tanh(x)
//   sigmoid  y = σ(x)
//   softmax  y[r, :] = e^(x[r, :] − m) / Σ e^(x[r, :] − m),  m = max x[r, :]
// Backward (g = dL/dy): dx = g·f'(x); tanh and sigmoid from the saved output ((1 − y)(1 + y), y(1 − y)); swiglu gives
// dgate and/or dup; softmax dx = y ⊙ (g − Σ g ⊙ y) per row.
// float32 uses the 8-lane AVX2 math of vecmath.h (exp/tanh/Φ to ≤ 5e-7 relative), float64 libm.
// Parallel over elements (rows for softmax); each element's value is independent of the thread split.
#include <algorithm>
#include <cmath>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"
#include "kernels/vecmath.h"

namespace maclm {
namespace {

using vm::Simd;

constexpr int64_t kGrain = 1 << 13;      // elements per thread below which a map runs inline
constexpr int64_t kRowGrain = 1 << 14;   // softmax: elements per thread
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluC = 0.044715;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <typename V>
inline V sigmoid(V x) {
  return V(1.0) / (V(1.0) + vm::vexp(-x));
}

// ---- pointwise formulas, generic over the pack type V ------------------------------------------------------

struct GeluTanhFwd {
  template <typename V>
  V operator()(V x) const {
    const V u2 = x * (V(2 * kSqrt2OverPi) + V(2 * kSqrt2OverPi * kGeluC) * (x * x));  // 2u
    return x / (V(1.0) + vm::vexp(-u2));
  }
};
struct GeluTanhBwd {  // (g, x)
  template <typename V>
  V operator()(V g, V x) const {
    const V x2 = x * x;
    const V u2 = x * (V(2 * kSqrt2OverPi) + V(2 * kSqrt2OverPi * kGeluC) * x2);
    const V s = V(1.0) / (V(1.0) + vm::vexp(-u2));
    const V du2 = V(2 * kSqrt2OverPi) + V(6 * kSqrt2OverPi * kGeluC) * x2;  // d(2u)/dx
    return g * (s + x * s * (V(1.0) - s) * du2);
  }
};
struct GeluErfFwd {
  template <typename V>
  V operator()(V x) const {
    return x * vm::vphi(x);
  }
};
struct GeluErfBwd {
  template <typename V>
  V operator()(V g, V x) const {
    V e2;  // exp(−x²/2)
    const V phi = vm::vphi(x, &e2);
    return g * (phi + x * (V(kInvSqrt2Pi) * e2));
  }
};
struct SiluFwd {
  template <typename V>
  V operator()(V x) const {
    return x / (V(1.0) + vm::vexp(-x));
  }
};
struct SiluBwd {
  template <typename V>
  V operator()(V g, V x) const {
    const V s = sigmoid(x);
    return g * (s * (V(1.0) + x * (V(1.0) - s)));
  }
};
struct SwigluFwd {  // (gate, up)
  template <typename V>
  V operator()(V a, V b) const {
    return a * b / (V(1.0) + vm::vexp(-a));
  }
};
struct TanhFwd {
  template <typename V>
  V operator()(V x) const {
    return vm::vtanh(x);
  }
};
struct TanhBwd {  // (g, y)
  template <typename V>
  V operator()(V g, V y) const {
    return g * ((V(1.0) - y) * (V(1.0) + y));
  }
};
struct SigmoidFwd {
  template <typename V>
  V operator()(V x) const {
    return sigmoid(x);
  }
};
struct SigmoidBwd {  // (g, y)
  template <typename V>
  V operator()(V g, V y) const {
    return g * (y * (V(1.0) - y));
  }
};

// out = f(in...) over n elements, in parallel.
template <typename T, typename F, typename... In>
void map_parallel(T* out, int64_t n, F f, const In*... in) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) { vm::map<T>(out + i0, i1 - i0, f, (in + i0)...); });
}

// ---- kernels -----------------------------------------------------------------------------------------------

template <typename T>
void gelu_forward(T* out, const T* inp, int64_t n, bool tanh_approx) {
  if (tanh_approx) map_parallel<T>(out, n, GeluTanhFwd{}, inp);
  else map_parallel<T>(out, n, GeluErfFwd{}, inp);
}

template <typename T>
void gelu_backward(T* dinp, const T* dout, const T* inp, int64_t n, bool tanh_approx) {
  if (tanh_approx) map_parallel<T>(dinp, n, GeluTanhBwd{}, dout, inp);
  else map_parallel<T>(dinp, n, GeluErfBwd{}, dout, inp);
}

// dgate and/or dup (null = not needed) in one pass.
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  using S = Simd<T>;
  using V = typename S::V;
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    vm::for_packs<T>(i1 - i0, [&](int64_t j, int k) {
      const int64_t i = i0 + j;
      const V g = S::loadk(dout + i, k), a = S::loadk(gate + i, k);
      const V s = sigmoid(a);
      if (dgate) S::storek(dgate + i, g * S::loadk(up + i, k) * (s * (V(1.0) + a * (V(1.0) - s))), k);
      if (dup) S::storek(dup + i, g * (a * s), k);
    });
  });
}

template <typename T>
void softmax_forward(T* out, const T* inp, int64_t rows, int64_t C) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W;
  parallel_for(rows, std::max<int64_t>(1, kRowGrain / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* x = inp + r * C;
      T* y = out + r * C;
      const V m = S::splat(vm::reduce_max(x, C));
      V acc0 = S::splat(0), acc1 = acc0;
      int64_t i = 0;
      for (; i + 2 * W <= C; i += 2 * W) {
        const V e0 = vm::vexp(S::load(x + i) - m), e1 = vm::vexp(S::load(x + i + W) - m);
        S::store(y + i, e0);
        S::store(y + i + W, e1);
        acc0 += e0;
        acc1 += e1;
      }
      for (; i + W <= C; i += W) {
        const V e = vm::vexp(S::load(x + i) - m);
        S::store(y + i, e);
        acc0 += e;
      }
      T sum = vm::hsum(acc0 + acc1);
      if (i < C) {
        const int k = static_cast<int>(C - i);
        S::storek(y + i, vm::vexp(S::loadk(x + i, k) - m), k);
        for (; i < C; i++) sum += y[i];
      }
      const V inv = S::splat(T(1) / sum);
      vm::map<T>(y, C, [inv](V v) { return v * inv; }, y);
    }
  });
}

template <typename T>
void softmax_backward(T* dinp, const T* dout, const T* out, int64_t rows, int64_t C) {
  using V = typename Simd<T>::V;
  parallel_for(rows, std::max<int64_t>(1, kRowGrain / C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* g = dout + r * C;
      const T* y = out + r * C;
      const T d = vm::reduce_sum<T>(C, [](auto gv, auto yv) { return gv * yv; }, g, y);
      const V dv = Simd<T>::splat(d);
      vm::map<T>(dinp + r * C, C, [dv](V gv, V yv) { return yv * (gv - dv); }, g, y);
    }
  });
}

// ---- bindings ----------------------------------------------------------------------------------------------

// Checks that each of `count` arrays has dtype T and at least n elements.
template <typename T>
void expect_all(const Napi::CallbackInfo& info, const Arr* arrs, const char* const* names, int count, int64_t n, const char* op) {
  for (int i = 0; i < count; i++) expect(info, arrs[i], dtype_of<T>(), n, op, names[i]);
}

// geluForward(out, inp, approximate)  approximate: 0 = erf ("none"), 1 = tanh
Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  const char* op = "geluForward";
  const Arr a[2] = {arr_at(info, 0, op), arr_at(info, 1, op)};
  const char* names[2] = {"out", "inp"};
  const bool approx = int_at(info, 2, op) != 0;
  dispatch_float(info, a[0], op, [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = a[0].length;
    expect_all<T>(info, a, names, 2, n, op);
    gelu_forward<T>(a[0].as<T>(), a[1].as<T>(), n, approx);
  });
  return info.Env().Undefined();
}

// geluBackward(dinp, dout, inp, approximate)
Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const char* op = "geluBackward";
  const Arr a[3] = {arr_at(info, 0, op), arr_at(info, 1, op), arr_at(info, 2, op)};
  const char* names[3] = {"dinp", "dout", "inp"};
  const bool approx = int_at(info, 3, op) != 0;
  dispatch_float(info, a[0], op, [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = a[0].length;
    expect_all<T>(info, a, names, 3, n, op);
    gelu_backward<T>(a[0].as<T>(), a[1].as<T>(), a[2].as<T>(), n, approx);
  });
  return info.Env().Undefined();
}

// Unary forward (out, inp) and backward (dinp, dout, saved) bindings for a pair of formulas.
template <typename Fwd>
Napi::Value unary_forward(const Napi::CallbackInfo& info, const char* op) {
  const Arr a[2] = {arr_at(info, 0, op), arr_at(info, 1, op)};
  const char* names[2] = {"out", "inp"};
  dispatch_float(info, a[0], op, [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = a[0].length;
    expect_all<T>(info, a, names, 2, n, op);
    map_parallel<T>(a[0].as<T>(), n, Fwd{}, a[1].as<T>());
  });
  return info.Env().Undefined();
}

template <typename Bwd>
Napi::Value unary_backward(const Napi::CallbackInfo& info, const char* op, const char* saved) {
  const Arr a[3] = {arr_at(info, 0, op), arr_at(info, 1, op), arr_at(info, 2, op)};
  const char* names[3] = {"dinp", "dout", saved};
  dispatch_float(info, a[0], op, [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = a[0].length;
    expect_all<T>(info, a, names, 3, n, op);
    map_parallel<T>(a[0].as<T>(), n, Bwd{}, a[1].as<T>(), a[2].as<T>());
  });
  return info.Env().Undefined();
}

// siluForward(out, inp) / siluBackward(dinp, dout, inp)
Napi::Value SiluForward(const Napi::CallbackInfo& info) { return unary_forward<SiluFwd>(info, "siluForward"); }
Napi::Value SiluBackward(const Napi::CallbackInfo& info) { return unary_backward<SiluBwd>(info, "siluBackward", "inp"); }
// tanhForward(out, inp) / tanhBackward(dinp, dout, out)
Napi::Value TanhForward(const Napi::CallbackInfo& info) { return unary_forward<TanhFwd>(info, "tanhForward"); }
Napi::Value TanhBackward(const Napi::CallbackInfo& info) { return unary_backward<TanhBwd>(info, "tanhBackward", "out"); }
// sigmoidForward(out, inp) / sigmoidBackward(dinp, dout, out)
Napi::Value SigmoidForward(const Napi::CallbackInfo& info) { return unary_forward<SigmoidFwd>(info, "sigmoidForward"); }
Napi::Value SigmoidBackward(const Napi::CallbackInfo& info) {
  return unary_backward<SigmoidBwd>(info, "sigmoidBackward", "out");
}

// swigluForward(out, gate, up)
Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  const char* op = "swigluForward";
  const Arr a[3] = {arr_at(info, 0, op), arr_at(info, 1, op), arr_at(info, 2, op)};
  const char* names[3] = {"out", "gate", "up"};
  dispatch_float(info, a[0], op, [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = a[0].length;
    expect_all<T>(info, a, names, 3, n, op);
    map_parallel<T>(a[0].as<T>(), n, SwigluFwd{}, a[1].as<T>(), a[2].as<T>());
  });
  return info.Env().Undefined();
}

// swigluBackward(dgate|null, dup|null, dout, gate, up)
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  const char* op = "swigluBackward";
  const Arr dgate = arr_at(info, 0, op, true), dup = arr_at(info, 1, op, true);
  const Arr a[3] = {arr_at(info, 2, op), arr_at(info, 3, op), arr_at(info, 4, op)};
  const char* names[3] = {"dout", "gate", "up"};
  dispatch_float(info, a[0], op, [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = a[0].length;
    expect_all<T>(info, a, names, 3, n, op);
    if (dgate.present) expect(info, dgate, dtype_of<T>(), n, op, "dgate");
    if (dup.present) expect(info, dup, dtype_of<T>(), n, op, "dup");
    swiglu_backward<T>(dgate.present ? dgate.as<T>() : nullptr, dup.present ? dup.as<T>() : nullptr, a[0].as<T>(),
                       a[1].as<T>(), a[2].as<T>(), n);
  });
  return info.Env().Undefined();
}

// softmaxForward(out, inp, rows, C)
Napi::Value SoftmaxForward(const Napi::CallbackInfo& info) {
  const char* op = "softmaxForward";
  const Arr a[2] = {arr_at(info, 0, op), arr_at(info, 1, op)};
  const char* names[2] = {"out", "inp"};
  const int64_t rows = int_at(info, 2, op), C = int_at(info, 3, op);
  if (rows < 0 || C < 0) throw Napi::RangeError::New(info.Env(), "softmaxForward: negative dims");
  dispatch_float(info, a[0], op, [&](auto zero) {
    using T = decltype(zero);
    expect_all<T>(info, a, names, 2, rows * C, op);
    if (rows * C > 0) softmax_forward<T>(a[0].as<T>(), a[1].as<T>(), rows, C);
  });
  return info.Env().Undefined();
}

// softmaxBackward(dinp, dout, out, rows, C)
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  const char* op = "softmaxBackward";
  const Arr a[3] = {arr_at(info, 0, op), arr_at(info, 1, op), arr_at(info, 2, op)};
  const char* names[3] = {"dinp", "dout", "out"};
  const int64_t rows = int_at(info, 3, op), C = int_at(info, 4, op);
  if (rows < 0 || C < 0) throw Napi::RangeError::New(info.Env(), "softmaxBackward: negative dims");
  dispatch_float(info, a[0], op, [&](auto zero) {
    using T = decltype(zero);
    expect_all<T>(info, a, names, 3, rows * C, op);
    if (rows * C > 0) softmax_backward<T>(a[0].as<T>(), a[1].as<T>(), a[2].as<T>(), rows, C);
  });
  return info.Env().Undefined();
}

}  // namespace

MACLM_EXPORT(geluForward, GeluForward);
MACLM_EXPORT(geluBackward, GeluBackward);
MACLM_EXPORT(siluForward, SiluForward);
MACLM_EXPORT(siluBackward, SiluBackward);
MACLM_EXPORT(swigluForward, SwigluForward);
MACLM_EXPORT(swigluBackward, SwigluBackward);
MACLM_EXPORT(tanhForward, TanhForward);
MACLM_EXPORT(tanhBackward, TanhBackward);
MACLM_EXPORT(sigmoidForward, SigmoidForward);
MACLM_EXPORT(sigmoidBackward, SigmoidBackward);
MACLM_EXPORT(softmaxForward, SoftmaxForward);
MACLM_EXPORT(softmaxBackward, SoftmaxBackward);

}  // namespace maclm

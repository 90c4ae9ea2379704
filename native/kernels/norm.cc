// Normalisation over the last dim of a (rows, C) row-major input, with a per-channel weight (C):
//   layernorm  mean = Σx/C, var = Σ(x − mean)²/C (biased, like torch), rstd = 1/√(var + eps)
//              y = (x − mean)·rstd·w + b           (bias optional)
//   rmsnorm    rstd = 1/√(Σx²/C + eps),  y = x·rstd·w    (Llama RMSNorm / T5LayerNorm)
// Forward optionally saves mean and rstd (rows) for backward. Backward, with x̂ = (x − mean)·rstd (x·rstd for
// rmsnorm) and d̂ = g·w:
//   layernorm  dx = rstd·(d̂ − mean(d̂) − x̂·mean(d̂·x̂)),  dw = Σ_rows g·x̂,  db = Σ_rows g
//   rmsnorm    dx = rstd·(d̂ − x̂·mean(d̂·x̂)),            dw = Σ_rows g·x̂
// Any of dx/dw/db may be null (not needed). Rows run in parallel; dw/db are summed per fixed block of rows
// (at most kMaxBlocks blocks, the split depends only on `rows`), then the block partials are added in block
// order: the result is deterministic and independent of the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"
#include "kernels/vecmath.h"

namespace maclm {
namespace {

using vm::Simd;

constexpr int64_t kWork = 1 << 14;   // elements per thread below which work runs inline
constexpr int64_t kMaxBlocks = 64;  // row blocks for the dw/db partial sums

inline int64_t row_grain(int64_t C) { return std::max<int64_t>(1, kWork / std::max<int64_t>(C, 1)); }

template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int64_t rows, int64_t C, T eps) {
  using V = typename Simd<T>::V;
  parallel_for(rows, row_grain(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* x = inp + r * C;
      T* y = out + r * C;
      const T m = vm::reduce_sum<T>(C, [](auto v) { return v; }, x) / T(C);
      const T var = vm::reduce_sum<T>(C, [m](auto v) {
        using P = decltype(v);
        const P d = v - P(m);
        return d * d;
      }, x) / T(C);
      const T rs = T(1) / std::sqrt(var + eps);
      const V mv = Simd<T>::splat(m), rv = Simd<T>::splat(rs);
      if (b) vm::map<T>(y, C, [mv, rv](V xv, V wv, V bv) { return (xv - mv) * rv * wv + bv; }, x, w, b);
      else vm::map<T>(y, C, [mv, rv](V xv, V wv) { return (xv - mv) * rv * wv; }, x, w);
      if (mean) mean[r] = m;
      if (rstd) rstd[r] = rs;
    }
  });
}

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* w, int64_t rows, int64_t C, T eps) {
  using V = typename Simd<T>::V;
  parallel_for(rows, row_grain(C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* x = inp + r * C;
      const T ms = vm::reduce_sum<T>(C, [](auto v) { return v * v; }, x) / T(C);
      const T rs = T(1) / std::sqrt(ms + eps);
      const V rv = Simd<T>::splat(rs);
      vm::map<T>(out + r * C, C, [rv](V xv, V wv) { return xv * rv * wv; }, x, w);
      if (rstd) rstd[r] = rs;
    }
  });
}

// Runs row(r, pw, pb) for every row, in parallel, where pw/pb are the (C) partial-sum rows for dw/db of the
// row's block (null when not wanted), then dw/db = Σ over blocks, in block order.
template <typename T, typename RowFn>
void rows_with_param_grads(T* dw, T* db, int64_t rows, int64_t C, RowFn row) {
  if (!dw && !db) {
    parallel_for(rows, row_grain(C), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) row(r, static_cast<T*>(nullptr), static_cast<T*>(nullptr));
    });
    return;
  }
  if (rows == 0) {
    if (dw) std::fill(dw, dw + C, T(0));
    if (db) std::fill(db, db + C, T(0));
    return;
  }
  const int64_t per = (rows + kMaxBlocks - 1) / kMaxBlocks;  // rows per block
  const int64_t nb = (rows + per - 1) / per;
  const int64_t planes = (dw ? 1 : 0) + (db ? 1 : 0);
  std::vector<T> part(static_cast<size_t>(nb * planes * C), T(0));
  T* pw0 = dw ? part.data() : nullptr;
  T* pb0 = db ? part.data() + (dw ? nb * C : 0) : nullptr;
  parallel_for(nb, std::max<int64_t>(1, row_grain(C) / per), [&](int64_t b0, int64_t b1) {
    for (int64_t bk = b0; bk < b1; bk++) {
      T* pw = pw0 ? pw0 + bk * C : nullptr;
      T* pb = pb0 ? pb0 + bk * C : nullptr;
      for (int64_t r = bk * per, e = std::min(rows, r + per); r < e; r++) row(r, pw, pb);
    }
  });
  // Column-parallel, fixed block order.
  parallel_for(C, std::max<int64_t>(64, kWork / nb), [&](int64_t j0, int64_t j1) {
    for (int p = 0; p < 2; p++) {
      T* dst = p == 0 ? dw : db;
      const T* src = p == 0 ? pw0 : pb0;
      if (!dst) continue;
      std::copy(src + j0, src + j1, dst + j0);
      for (int64_t bk = 1; bk < nb; bk++) {
        const T* s = src + bk * C;
        for (int64_t j = j0; j < j1; j++) dst[j] += s[j];
      }
    }
  });
}

template <typename T>
void layernorm_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, const T* mean, const T* rstd,
                        int64_t rows, int64_t C) {
  using S = Simd<T>;
  using V = typename S::V;
  rows_with_param_grads<T>(dw, db, rows, C, [&](int64_t r, T* pw, T* pb) {
    const T* g = dout + r * C;
    const T* x = inp + r * C;
    const T m = mean[r], rs = rstd[r];
    const V mv = S::splat(m), rv = S::splat(rs);
    V a = S::splat(0), c = S::splat(0);  // mean(d̂), mean(d̂·x̂)
    if (dinp) {
      const T sa = vm::reduce_sum<T>(C, [](auto gv, auto wv) { return gv * wv; }, g, w);
      const T sc = vm::reduce_sum<T>(C, [m, rs](auto gv, auto wv, auto xv) {
        using P = decltype(gv);
        return gv * wv * ((xv - P(m)) * P(rs));
      }, g, w, x);
      a = S::splat(sa / T(C));
      c = S::splat(sc / T(C));
    }
    T* dx = dinp ? dinp + r * C : nullptr;
    vm::for_packs<T>(C, [&](int64_t i, int k) {
      const V gv = S::loadk(g + i, k);
      const V xh = (S::loadk(x + i, k) - mv) * rv;
      if (dx) S::storek(dx + i, (gv * S::loadk(w + i, k) - a - xh * c) * rv, k);
      if (pw) S::storek(pw + i, S::loadk(pw + i, k) + gv * xh, k);
      if (pb) S::storek(pb + i, S::loadk(pb + i, k) + gv, k);
    });
  });
}

template <typename T>
void rmsnorm_backward(T* dinp, T* dw, const T* dout, const T* inp, const T* w, const T* rstd, int64_t rows, int64_t C) {
  using S = Simd<T>;
  using V = typename S::V;
  rows_with_param_grads<T>(dw, static_cast<T*>(nullptr), rows, C, [&](int64_t r, T* pw, T*) {
    const T* g = dout + r * C;
    const T* x = inp + r * C;
    const T rs = rstd[r];
    const V rv = S::splat(rs);
    V c = S::splat(0);  // mean(d̂·x̂)
    if (dinp) {
      const T sc = vm::reduce_sum<T>(C, [rs](auto gv, auto wv, auto xv) {
        using P = decltype(gv);
        return gv * wv * (xv * P(rs));
      }, g, w, x);
      c = S::splat(sc / T(C));
    }
    T* dx = dinp ? dinp + r * C : nullptr;
    vm::for_packs<T>(C, [&](int64_t i, int k) {
      const V gv = S::loadk(g + i, k);
      const V xh = S::loadk(x + i, k) * rv;
      if (dx) S::storek(dx + i, (gv * S::loadk(w + i, k) - xh * c) * rv, k);
      if (pw) S::storek(pw + i, S::loadk(pw + i, k) + gv * xh, k);
    });
  });
}

// ---- bindings ----------------------------------------------------------------------------------------------

void check_dims(const Napi::CallbackInfo& info, int64_t rows, int64_t C, const char* op) {
  if (rows < 0 || C < 1) throw Napi::RangeError::New(info.Env(), std::string(op) + ": need rows >= 0 and C >= 1");
}

template <typename T>
T* ptr_or_null(const Napi::CallbackInfo& info, const Arr& a, int64_t n, const char* op, const char* what) {
  if (!a.present) return nullptr;
  expect(info, a, dtype_of<T>(), n, op, what);
  return a.as<T>();
}

// layernormForward(out, mean|null, rstd|null, inp, weight, bias|null, rows, C, eps)
Napi::Value LayernormForward(const Napi::CallbackInfo& info) {
  const char* op = "layernormForward";
  const Arr out = arr_at(info, 0, op), mean = arr_at(info, 1, op, true), rstd = arr_at(info, 2, op, true);
  const Arr inp = arr_at(info, 3, op), w = arr_at(info, 4, op), b = arr_at(info, 5, op, true);
  const int64_t rows = int_at(info, 6, op), C = int_at(info, 7, op);
  const double eps = num_at(info, 8, op);
  check_dims(info, rows, C, op);
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, dtype_of<T>(), rows * C, op, "out");
    expect(info, inp, dtype_of<T>(), rows * C, op, "inp");
    expect(info, w, dtype_of<T>(), C, op, "weight");
    layernorm_forward<T>(out.as<T>(), ptr_or_null<T>(info, mean, rows, op, "mean"), ptr_or_null<T>(info, rstd, rows, op, "rstd"),
                         inp.as<T>(), w.as<T>(), ptr_or_null<T>(info, b, C, op, "bias"), rows, C, T(eps));
  });
  return info.Env().Undefined();
}

// layernormBackward(dinp|null, dweight|null, dbias|null, dout, inp, weight, mean, rstd, rows, C)
Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  const char* op = "layernormBackward";
  const Arr dinp = arr_at(info, 0, op, true), dw = arr_at(info, 1, op, true), db = arr_at(info, 2, op, true);
  const Arr dout = arr_at(info, 3, op), inp = arr_at(info, 4, op), w = arr_at(info, 5, op);
  const Arr mean = arr_at(info, 6, op), rstd = arr_at(info, 7, op);
  const int64_t rows = int_at(info, 8, op), C = int_at(info, 9, op);
  check_dims(info, rows, C, op);
  dispatch_float(info, dout, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, dout, dtype_of<T>(), rows * C, op, "dout");
    expect(info, inp, dtype_of<T>(), rows * C, op, "inp");
    expect(info, w, dtype_of<T>(), C, op, "weight");
    expect(info, mean, dtype_of<T>(), rows, op, "mean");
    expect(info, rstd, dtype_of<T>(), rows, op, "rstd");
    layernorm_backward<T>(ptr_or_null<T>(info, dinp, rows * C, op, "dinp"), ptr_or_null<T>(info, dw, C, op, "dweight"),
                          ptr_or_null<T>(info, db, C, op, "dbias"), dout.as<T>(), inp.as<T>(), w.as<T>(), mean.as<T>(),
                          rstd.as<T>(), rows, C);
  });
  return info.Env().Undefined();
}

// rmsnormForward(out, rstd|null, inp, weight, rows, C, eps)
Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  const char* op = "rmsnormForward";
  const Arr out = arr_at(info, 0, op), rstd = arr_at(info, 1, op, true), inp = arr_at(info, 2, op), w = arr_at(info, 3, op);
  const int64_t rows = int_at(info, 4, op), C = int_at(info, 5, op);
  const double eps = num_at(info, 6, op);
  check_dims(info, rows, C, op);
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, dtype_of<T>(), rows * C, op, "out");
    expect(info, inp, dtype_of<T>(), rows * C, op, "inp");
    expect(info, w, dtype_of<T>(), C, op, "weight");
    rmsnorm_forward<T>(out.as<T>(), ptr_or_null<T>(info, rstd, rows, op, "rstd"), inp.as<T>(), w.as<T>(), rows, C, T(eps));
  });
  return info.Env().Undefined();
}

// rmsnormBackward(dinp|null, dweight|null, dout, inp, weight, rstd, rows, C)
Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  const char* op = "rmsnormBackward";
  const Arr dinp = arr_at(info, 0, op, true), dw = arr_at(info, 1, op, true);
  const Arr dout = arr_at(info, 2, op), inp = arr_at(info, 3, op), w = arr_at(info, 4, op), rstd = arr_at(info, 5, op);
  const int64_t rows = int_at(info, 6, op), C = int_at(info, 7, op);
  check_dims(info, rows, C, op);
  dispatch_float(info, dout, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, dout, dtype_of<T>(), rows * C, op, "dout");
    expect(info, inp, dtype_of<T>(), rows * C, op, "inp");
    expect(info, w, dtype_of<T>(), C, op, "weight");
    expect(info, rstd, dtype_of<T>(), rows, op, "rstd");
    rmsnorm_backward<T>(ptr_or_null<T>(info, dinp, rows * C, op, "dinp"), ptr_or_null<T>(info, dw, C, op, "dweight"),
                        dout.as<T>(), inp.as<T>(), w.as<T>(), rstd.as<T>(), rows, C);
  });
  return info.Env().Undefined();
}

}  // namespace

MACLM_EXPORT(layernormForward, LayernormForward);
MACLM_EXPORT(layernormBackward, LayernormBackward);
MACLM_EXPORT(rmsnormForward, RmsnormForward);
MACLM_EXPORT(rmsnormBackward, RmsnormBackward);

}  // namespace maclm

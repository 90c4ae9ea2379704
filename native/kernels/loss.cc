// Fused, numerically stable softmax losses over the last dimension. Rows are independent and run in parallel.
//
//   cross_entropy_forward:  logits (N, V), targets (N) int32 -> lse (N) = log sum_j exp(logits[n, j]) and
//                           loss_n = lse_n - logits[n, t_n] (0 where t_n == ignoreIndex), reduced to
//                             out (N) for reduction 0 (none), out (1) = sum_n loss_n for 1 (sum),
//                             out (1) = sum_n loss_n / count for 2 (mean), 0 when no target counts.
//                           exp is vecmath.h's SIMD exp (float, AVX2) or std::exp; sums of exponentials
//                           accumulate in float within blocks of 512 and in double across blocks and rows. Returns the count of
//                           non-ignored targets, or -(n + 1) for the first row whose target is outside [0, V)
//                           (then nothing is written).
//   cross_entropy_backward: dlogits (N, V) = (exp(logits - lse) - onehot(t)) * s_n, with s_n = g[n] (none),
//                           g[0] (sum) or g[0] / count (mean); rows with t_n == ignoreIndex get 0. Written in one
//                           pass from the saved lse, without materialising log-probabilities.
//   log_softmax_forward:    out (R, V) = x - logsumexp(x) over each row.
//   log_softmax_backward:   dx (R, V) = g - exp(out) * sum_j g[r, j].
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"
#include "kernels/vecmath.h"

namespace maclm {
namespace {

constexpr int64_t kGrain = 1 << 13;

inline int64_t row_grain(int64_t V) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(V, 1)); }

// log sum_j exp(x[j]), stable: max first, then exp(x - max) with the SIMD exp (vecmath.h), summed in float over
// blocks of kSumBlock elements and the block sums in double.
constexpr int64_t kSumBlock = 512;

template <typename T>
double row_logsumexp(const T* x, int64_t V) {
  const T mx = vm::reduce_max(x, V);
  if (mx == -std::numeric_limits<T>::infinity()) return double(mx);  // empty row or all -inf
  if (std::isnan(mx)) return double(mx);
  double s = 0;
  for (int64_t j0 = 0; j0 < V; j0 += kSumBlock) {
    s += double(vm::reduce_sum<T>(
        std::min(kSumBlock, V - j0), [&](auto v) { return vm::vexp(v - decltype(v)(mx)); }, x + j0));
  }
  return double(mx) + std::log(s);
}

template <typename T>
int64_t cross_entropy_forward(T* out, T* lse, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                              int64_t ignore, int reduction) {
  int64_t count = 0;
  for (int64_t n = 0; n < N; n++) {
    const int64_t t = targets[n];
    if (t == ignore) continue;
    if (t < 0 || t >= V) return -(n + 1);
    count++;
  }
  std::vector<double> loss(size_t(N), 0.0);
  parallel_for(N, row_grain(V), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      const T* x = logits + n * V;
      const double l = row_logsumexp(x, V);
      lse[n] = T(l);
      const int64_t t = targets[n];
      loss[n] = t == ignore ? 0.0 : l - double(x[t]);
    }
  });
  if (reduction == 0) {
    for (int64_t n = 0; n < N; n++) out[n] = T(loss[n]);
  } else {
    double s = 0;
    for (int64_t n = 0; n < N; n++) s += loss[n];
    if (reduction == 2) s = count > 0 ? s / double(count) : 0.0;
    out[0] = T(s);
  }
  return count;
}

template <typename T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets, const T* g, int64_t N,
                            int64_t V, int64_t ignore, int reduction, int64_t count) {
  parallel_for(N, row_grain(V), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      T* d = dlogits + n * V;
      const int64_t t = targets[n];
      if (t == ignore) {
        std::fill(d, d + V, T(0));
        continue;
      }
      const T s = reduction == 0 ? g[n] : reduction == 1 ? g[0] : (count > 0 ? T(double(g[0]) / double(count)) : T(0));
      const T* x = logits + n * V;
      const T l = lse[n];
      vm::map(d, V, [&](auto v) { return vm::vexp(v - decltype(v)(l)) * decltype(v)(s); }, x);
      d[t] -= s;
    }
  });
}

template <typename T>
void log_softmax_forward(T* out, const T* x, int64_t R, int64_t V) {
  parallel_for(R, row_grain(V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * V;
      T* o = out + r * V;
      const T l = T(row_logsumexp(xr, V));
      for (int64_t j = 0; j < V; j++) o[j] = xr[j] - l;
    }
  });
}

template <typename T>
void log_softmax_backward(T* dx, const T* g, const T* out, int64_t R, int64_t V) {
  parallel_for(R, row_grain(V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* gr = g + r * V;
      const T* o = out + r * V;
      T* d = dx + r * V;
      double s = 0;
      for (int64_t j = 0; j < V; j++) s += double(gr[j]);
      const T st = T(s);
      vm::map(d, V, [&](auto gv, auto ov) { return gv - vm::vexp(ov) * decltype(gv)(st); }, gr, o);
    }
  });
}

void check_dims(const Napi::CallbackInfo& info, int64_t a, int64_t b, const char* op) {
  if (a < 0 || b < 0) throw Napi::RangeError::New(info.Env(), std::string(op) + ": negative dims");
}

// crossEntropyForward(out, lse, logits, targets, N, V, ignoreIndex, reduction) -> count or -(badRow + 1)
Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  const char* op = "crossEntropyForward";
  Arr out = arr_at(info, 0, op), lse = arr_at(info, 1, op), logits = arr_at(info, 2, op), targets = arr_at(info, 3, op);
  const int64_t N = int_at(info, 4, op), V = int_at(info, 5, op), ignore = int_at(info, 6, op);
  const int reduction = static_cast<int>(int_at(info, 7, op));
  check_dims(info, N, V, op);
  if (reduction < 0 || reduction > 2) throw Napi::RangeError::New(info.Env(), "crossEntropyForward: bad reduction");
  expect(info, targets, DType::I32, N, op, "targets");
  int64_t result = 0;
  dispatch_float(info, logits, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, logits, dtype_of<T>(), N * V, op, "logits");
    expect(info, lse, dtype_of<T>(), N, op, "lse");
    expect(info, out, dtype_of<T>(), reduction == 0 ? N : 1, op, "out");
    result = cross_entropy_forward<T>(out.as<T>(), lse.as<T>(), logits.as<T>(), targets.as<int32_t>(), N, V, ignore,
                                      reduction);
  });
  return Napi::Number::New(info.Env(), double(result));
}

// crossEntropyBackward(dlogits, logits, lse, targets, g, N, V, ignoreIndex, reduction, count)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  const char* op = "crossEntropyBackward";
  Arr dlogits = arr_at(info, 0, op), logits = arr_at(info, 1, op), lse = arr_at(info, 2, op),
      targets = arr_at(info, 3, op), g = arr_at(info, 4, op);
  const int64_t N = int_at(info, 5, op), V = int_at(info, 6, op), ignore = int_at(info, 7, op);
  const int reduction = static_cast<int>(int_at(info, 8, op));
  const int64_t count = int_at(info, 9, op);
  check_dims(info, N, V, op);
  if (reduction < 0 || reduction > 2) throw Napi::RangeError::New(info.Env(), "crossEntropyBackward: bad reduction");
  expect(info, targets, DType::I32, N, op, "targets");
  const int32_t* t = targets.as<int32_t>();
  for (int64_t n = 0; n < N; n++)
    if (t[n] != ignore && (t[n] < 0 || t[n] >= V))
      throw Napi::RangeError::New(info.Env(), "crossEntropyBackward: target outside [0, V)");
  dispatch_float(info, dlogits, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, dlogits, dtype_of<T>(), N * V, op, "dlogits");
    expect(info, logits, dtype_of<T>(), N * V, op, "logits");
    expect(info, lse, dtype_of<T>(), N, op, "lse");
    expect(info, g, dtype_of<T>(), reduction == 0 ? N : 1, op, "g");
    cross_entropy_backward<T>(dlogits.as<T>(), logits.as<T>(), lse.as<T>(), t, g.as<T>(), N, V, ignore, reduction, count);
  });
  return info.Env().Undefined();
}

// logSoftmaxForward(out, x, R, V)
Napi::Value LogSoftmaxForward(const Napi::CallbackInfo& info) {
  const char* op = "logSoftmaxForward";
  Arr out = arr_at(info, 0, op), x = arr_at(info, 1, op);
  const int64_t R = int_at(info, 2, op), V = int_at(info, 3, op);
  check_dims(info, R, V, op);
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, dtype_of<T>(), R * V, op, "out");
    expect(info, x, dtype_of<T>(), R * V, op, "x");
    log_softmax_forward<T>(out.as<T>(), x.as<T>(), R, V);
  });
  return info.Env().Undefined();
}

// logSoftmaxBackward(dx, g, out, R, V)
Napi::Value LogSoftmaxBackward(const Napi::CallbackInfo& info) {
  const char* op = "logSoftmaxBackward";
  Arr dx = arr_at(info, 0, op), g = arr_at(info, 1, op), out = arr_at(info, 2, op);
  const int64_t R = int_at(info, 3, op), V = int_at(info, 4, op);
  check_dims(info, R, V, op);
  dispatch_float(info, dx, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, dx, dtype_of<T>(), R * V, op, "dx");
    expect(info, g, dtype_of<T>(), R * V, op, "g");
    expect(info, out, dtype_of<T>(), R * V, op, "out");
    log_softmax_backward<T>(dx.as<T>(), g.as<T>(), out.as<T>(), R, V);
  });
  return info.Env().Undefined();
}

}  // namespace

MACLM_EXPORT(crossEntropyForward, CrossEntropyForward);
MACLM_EXPORT(crossEntropyBackward, CrossEntropyBackward);
MACLM_EXPORT(logSoftmaxForward, LogSoftmaxForward);
MACLM_EXPORT(logSoftmaxBackward, LogSoftmaxBackward);

}  // namespace maclm

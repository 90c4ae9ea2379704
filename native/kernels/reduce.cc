// Sums over all elements or over one axis, and the broadcast that is their backward.
//
//   sum_all:       out (1) = scale * sum_i x[i]. Fixed blocks of kBlock elements are summed in double (in parallel),
//                  then the block sums in order: the result does not depend on the thread count.
//   sum_axis:      x viewed as (outer, n, inner) -> out (outer, inner) = scale * sum_k x[o, k, i], accumulated in
//                  double. inner == 1 sums contiguous rows; otherwise work items are (o, block of kCols columns),
//                  each walking k in order into a local double buffer.
//   broadcast_axis: dx (outer, n, inner) = scale * g (outer, inner) repeated along n (sum/mean backward; the
//                  full reduction is outer = inner = 1).
// scale is 1 for sum and 1/n for mean.
#include <algorithm>
#include <vector>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"

namespace maclm {
namespace {

constexpr int64_t kGrain = 1 << 14;
constexpr int64_t kBlock = 1 << 12;
constexpr int64_t kCols = 256;

// Sum of x[0..n) in double, with independent accumulators (the compiler keeps the order fixed).
template <typename T>
double block_sum(const T* x, int64_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) a[j] += double(x[i + j]);
  double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  for (; i < n; i++) s += double(x[i]);
  return s;
}

template <typename T>
void sum_all(T* out, const T* x, int64_t n, double scale) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> part(size_t(std::max<int64_t>(blocks, 1)), 0.0);
  parallel_for(blocks, std::max<int64_t>(1, kGrain / kBlock), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t s = b * kBlock;
      part[size_t(b)] = block_sum(x + s, std::min(kBlock, n - s));
    }
  });
  double s = 0;
  for (int64_t b = 0; b < blocks; b++) s += part[size_t(b)];
  out[0] = T(s * scale);
}

template <typename T>
void sum_axis(T* out, const T* x, int64_t outer, int64_t n, int64_t inner, double scale) {
  if (inner == 1) {
    parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) out[o] = T(block_sum(x + o * n, n) * scale);
    });
    return;
  }
  const int64_t cb = (inner + kCols - 1) / kCols;
  const int64_t work = std::max<int64_t>(1, n * std::min(inner, kCols));
  parallel_for(outer * cb, std::max<int64_t>(1, kGrain / work), [&](int64_t i0, int64_t i1) {
    double acc[kCols];
    for (int64_t it = i0; it < i1; it++) {
      const int64_t o = it / cb, c0 = (it % cb) * kCols, w = std::min(kCols, inner - c0);
      std::fill(acc, acc + w, 0.0);
      const T* base = x + o * n * inner + c0;
      for (int64_t k = 0; k < n; k++) {
        const T* row = base + k * inner;
        for (int64_t j = 0; j < w; j++) acc[j] += double(row[j]);
      }
      T* dst = out + o * inner + c0;
      for (int64_t j = 0; j < w; j++) dst[j] = T(acc[j] * scale);
    }
  });
}

template <typename T>
void broadcast_axis(T* dx, const T* g, int64_t outer, int64_t n, int64_t inner, double scale) {
  const T s = T(scale);
  parallel_for(outer * n, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* src = g + (r / n) * inner;
      T* dst = dx + r * inner;
      for (int64_t i = 0; i < inner; i++) dst[i] = src[i] * s;
    }
  });
}

void check_dims(const Napi::CallbackInfo& info, int64_t a, int64_t b, int64_t c, const char* op) {
  if (a < 0 || b < 0 || c < 0) throw Napi::RangeError::New(info.Env(), std::string(op) + ": negative dims");
}

// sumAll(out, x, scale)
Napi::Value SumAll(const Napi::CallbackInfo& info) {
  const char* op = "sumAll";
  Arr out = arr_at(info, 0, op), x = arr_at(info, 1, op);
  const double scale = num_at(info, 2, op);
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, dtype_of<T>(), 1, op, "out");
    expect(info, x, dtype_of<T>(), 0, op, "x");
    sum_all<T>(out.as<T>(), x.as<T>(), x.length, scale);
  });
  return info.Env().Undefined();
}

// sumAxis(out, x, outer, n, inner, scale)
Napi::Value SumAxis(const Napi::CallbackInfo& info) {
  const char* op = "sumAxis";
  Arr out = arr_at(info, 0, op), x = arr_at(info, 1, op);
  const int64_t outer = int_at(info, 2, op), n = int_at(info, 3, op), inner = int_at(info, 4, op);
  const double scale = num_at(info, 5, op);
  check_dims(info, outer, n, inner, op);
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, dtype_of<T>(), outer * inner, op, "out");
    expect(info, x, dtype_of<T>(), outer * n * inner, op, "x");
    sum_axis<T>(out.as<T>(), x.as<T>(), outer, n, inner, scale);
  });
  return info.Env().Undefined();
}

// broadcastAxis(dx, g, outer, n, inner, scale)
Napi::Value BroadcastAxis(const Napi::CallbackInfo& info) {
  const char* op = "broadcastAxis";
  Arr dx = arr_at(info, 0, op), g = arr_at(info, 1, op);
  const int64_t outer = int_at(info, 2, op), n = int_at(info, 3, op), inner = int_at(info, 4, op);
  const double scale = num_at(info, 5, op);
  check_dims(info, outer, n, inner, op);
  dispatch_float(info, dx, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, dx, dtype_of<T>(), outer * n * inner, op, "dx");
    expect(info, g, dtype_of<T>(), outer * inner, op, "g");
    broadcast_axis<T>(dx.as<T>(), g.as<T>(), outer, n, inner, scale);
  });
  return info.Env().Undefined();
}

}  // namespace

MACLM_EXPORT(sumAll, SumAll);
MACLM_EXPORT(sumAxis, SumAxis);
MACLM_EXPORT(broadcastAxis, BroadcastAxis);

}  // namespace maclm

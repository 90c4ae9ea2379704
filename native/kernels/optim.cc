// Optimizer kernels.
//
//   adamw_step:  one fused AdamW update, in place on param, m, v (all (n), same float dtype as grad), with
//                torch.optim.AdamW's order of operations (single-tensor path):
//                  p <- p * (1 - lr * weightDecay)                    (decoupled decay; skipped when 0)
//                  m <- lerp(m, g, 1 - beta1)                          (as torch's lerp: two forms by weight)
//                  v <- v * beta2 + (1 - beta2) * g * g
//                  p <- p + (-lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//                step counts from 1. Elementwise, parallel over blocks.
//   sum_squares: sum_i x[i]^2 in double over fixed blocks, then the block sums in order (deterministic whatever
//                the thread count). clipGradNorm adds these over all gradient tensors.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"

namespace maclm {
namespace {

constexpr int64_t kGrain = 1 << 14;
constexpr int64_t kBlock = 1 << 12;

template <typename T>
void adamw_step(T* p, const T* g, T* m, T* v, int64_t n, double lr, double beta1, double beta2, double eps,
                double wd, double step) {
  const T decay = T(1.0 - lr * wd);
  const bool do_decay = wd != 0.0;
  const T w1 = T(1.0 - beta1), b1 = T(beta1), b2 = T(beta2), w2 = T(1.0 - beta2);
  const bool lerp_low = std::abs(1.0 - beta1) < 0.5;
  const T neg_step = T(-(lr / (1.0 - std::pow(beta1, step))));
  const T bc2_sqrt = T(std::sqrt(1.0 - std::pow(beta2, step)));
  const T e = T(eps);
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      T pi = p[i];
      if (do_decay) pi *= decay;
      const T gi = g[i];
      const T mi = lerp_low ? m[i] + w1 * (gi - m[i]) : gi - (gi - m[i]) * b1;
      const T vi = v[i] * b2 + w2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const T denom = std::sqrt(vi) / bc2_sqrt + e;
      p[i] = pi + (neg_step * mi) / denom;
    }
  });
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> part(size_t(std::max<int64_t>(blocks, 1)), 0.0);
  parallel_for(blocks, std::max<int64_t>(1, kGrain / kBlock), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t s = b * kBlock, e = std::min(n, s + kBlock);
      double a[4] = {0, 0, 0, 0};
      int64_t i = s;
      for (; i + 4 <= e; i += 4)
        for (int j = 0; j < 4; j++) {
          const double xv = double(x[i + j]);
          a[j] += xv * xv;
        }
      double t = (a[0] + a[1]) + (a[2] + a[3]);
      for (; i < e; i++) t += double(x[i]) * double(x[i]);
      part[size_t(b)] = t;
    }
  });
  double s = 0;
  for (int64_t b = 0; b < blocks; b++) s += part[size_t(b)];
  return s;
}

// adamwStep(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step)
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  const char* op = "adamwStep";
  Arr p = arr_at(info, 0, op), g = arr_at(info, 1, op), m = arr_at(info, 2, op), v = arr_at(info, 3, op);
  const double lr = num_at(info, 4, op), beta1 = num_at(info, 5, op), beta2 = num_at(info, 6, op),
               eps = num_at(info, 7, op), wd = num_at(info, 8, op), step = num_at(info, 9, op);
  if (!(step >= 1)) throw Napi::RangeError::New(info.Env(), "adamwStep: step must be >= 1");
  dispatch_float(info, p, op, [&](auto zero) {
    using T = decltype(zero);
    const int64_t n = p.length;
    expect(info, g, dtype_of<T>(), n, op, "grad");
    expect(info, m, dtype_of<T>(), n, op, "m");
    expect(info, v, dtype_of<T>(), n, op, "v");
    adamw_step<T>(p.as<T>(), g.as<T>(), m.as<T>(), v.as<T>(), n, lr, beta1, beta2, eps, wd, step);
  });
  return info.Env().Undefined();
}

// sumSquares(x) -> number
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  const char* op = "sumSquares";
  Arr x = arr_at(info, 0, op);
  double s = 0;
  dispatch_float(info, x, op, [&](auto zero) {
    using T = decltype(zero);
    s = sum_squares<T>(x.as<T>(), x.length);
  });
  return Napi::Number::New(info.Env(), s);
}

}  // namespace

MACLM_EXPORT(adamwStep, AdamwStep);
MACLM_EXPORT(sumSquares, SumSquares);

}  // namespace maclm

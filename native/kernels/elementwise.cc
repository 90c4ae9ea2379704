// Elementwise binary ops with NumPy broadcasting, scale/shift, in-place axpy, and the broadcast-gradient
// reduction (sum a gradient back to an operand's shape).
//
// Broadcast layout: the output has shape out[0..nd) (nd <= 8, contiguous); each operand is addressed through
// element strides sa[], sb[] in the output's index space, with stride 0 on broadcast dimensions. Fast paths:
// identical layouts (contiguous, no broadcast) and a "row" operand b of shape (..., C) repeated over rows.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"

namespace maclm {
namespace {

constexpr int kMaxDims = 8;
constexpr int64_t kGrain = 1 << 14;

enum BinaryKind { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };

template <typename T>
inline T apply(int kind, T a, T b) {
  switch (kind) {
    case kAdd: return a + b;
    case kSub: return a - b;
    case kMul: return a * b;
    default: return a / b;
  }
}

template <typename T, int Kind>
void binary_contig(T* out, const T* a, const T* b, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) out[i] = apply<T>(Kind, a[i], b[i]);
  });
}

// b repeats with period c along the output (b's shape is a suffix of the output's).
template <typename T, int Kind>
void binary_rows(T* out, const T* a, const T* b, int64_t rows, int64_t c) {
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(c, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* ar = a + r * c;
      T* orow = out + r * c;
      for (int64_t j = 0; j < c; j++) orow[j] = apply<T>(Kind, ar[j], b[j]);
    }
  });
}

template <typename T>
void binary_strided(int kind, T* out, const T* a, const T* b, int nd, const int64_t* shape, const int64_t* sa,
                    const int64_t* sb) {
  int64_t n = 1;
  for (int d = 0; d < nd; d++) n *= shape[d];
  const int64_t inner = nd > 0 ? shape[nd - 1] : 1;
  const int64_t rows = inner > 0 ? n / inner : 0;
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    int64_t idx[kMaxDims] = {0};
    for (int64_t r = r0; r < r1; r++) {
      // Decompose row index r over dims [0, nd-1).
      int64_t rem = r, oa = 0, ob = 0;
      for (int d = nd - 2; d >= 0; d--) {
        idx[d] = rem % shape[d];
        rem /= shape[d];
        oa += idx[d] * sa[d];
        ob += idx[d] * sb[d];
      }
      const int64_t ia = nd > 0 ? sa[nd - 1] : 0, ib = nd > 0 ? sb[nd - 1] : 0;
      T* o = out + r * inner;
      for (int64_t j = 0; j < inner; j++) o[j] = apply<T>(kind, a[oa + j * ia], b[ob + j * ib]);
    }
  });
}

void read_dims(const Napi::CallbackInfo& info, size_t at, int nd, int64_t* dst, const char* op) {
  Napi::Array arr = info[at].As<Napi::Array>();
  if (static_cast<int>(arr.Length()) != nd) throw Napi::RangeError::New(info.Env(), std::string(op) + ": dims length mismatch");
  for (int d = 0; d < nd; d++) dst[d] = arr.Get(d).As<Napi::Number>().Int64Value();
}

// binary(kind, out, a, b, shape[], stridesA[], stridesB[], mode)
//   mode 0: strided general; 1: contiguous same shape; 2: b is a row of length shape[nd-1]... (rows, c) given by
//   shape = [rows, c]
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const char* op = "binary";
  const int kind = static_cast<int>(int_at(info, 0, op));
  Arr out = arr_at(info, 1, op), a = arr_at(info, 2, op), b = arr_at(info, 3, op);
  Napi::Array shapeArr = info[4].As<Napi::Array>();
  const int nd = static_cast<int>(shapeArr.Length());
  if (nd > kMaxDims) throw Napi::RangeError::New(info.Env(), "binary: more than 8 dimensions");
  int64_t shape[kMaxDims], sa[kMaxDims], sb[kMaxDims];
  read_dims(info, 4, nd, shape, op);
  read_dims(info, 5, nd, sa, op);
  read_dims(info, 6, nd, sb, op);
  const int mode = static_cast<int>(int_at(info, 7, op));
  int64_t n = 1, maxa = 0, maxb = 0;
  for (int d = 0; d < nd; d++) {
    n *= shape[d];
    if (shape[d] > 0) {
      maxa += (shape[d] - 1) * sa[d];
      maxb += (shape[d] - 1) * sb[d];
    }
  }
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, dtype_of<T>(), n, op, "out");
    if (n == 0) return;
    expect(info, a, dtype_of<T>(), maxa + 1, op, "a");
    expect(info, b, dtype_of<T>(), maxb + 1, op, "b");
    T *o = out.as<T>();
    const T *pa = a.as<T>(), *pb = b.as<T>();
    if (mode == 1) {
      switch (kind) {
        case kAdd: binary_contig<T, kAdd>(o, pa, pb, n); break;
        case kSub: binary_contig<T, kSub>(o, pa, pb, n); break;
        case kMul: binary_contig<T, kMul>(o, pa, pb, n); break;
        default: binary_contig<T, kDiv>(o, pa, pb, n); break;
      }
    } else if (mode == 2) {
      const int64_t c = shape[nd - 1], rows = n / c;
      switch (kind) {
        case kAdd: binary_rows<T, kAdd>(o, pa, pb, rows, c); break;
        case kSub: binary_rows<T, kSub>(o, pa, pb, rows, c); break;
        case kMul: binary_rows<T, kMul>(o, pa, pb, rows, c); break;
        default: binary_rows<T, kDiv>(o, pa, pb, rows, c); break;
      }
    } else {
      binary_strided<T>(kind, o, pa, pb, nd, shape, sa, sb);
    }
  });
  return info.Env().Undefined();
}

// affine(out, a, alpha, beta): out = alpha * a + beta  (out may alias a)
Napi::Value Affine(const Napi::CallbackInfo& info) {
  const char* op = "affine";
  Arr out = arr_at(info, 0, op), a = arr_at(info, 1, op);
  const double alpha = num_at(info, 2, op), beta = num_at(info, 3, op);
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, a, dtype_of<T>(), out.length, op, "a");
    T* o = out.as<T>();
    const T* x = a.as<T>();
    const T al = T(alpha), be = T(beta);
    parallel_for(out.length, kGrain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) o[i] = al * x[i] + be;
    });
  });
  return info.Env().Undefined();
}

// axpy(y, x, alpha): y += alpha * x, in place (gradient accumulation).
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  const char* op = "axpy";
  Arr y = arr_at(info, 0, op), x = arr_at(info, 1, op);
  const double alpha = num_at(info, 2, op);
  dispatch_float(info, y, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, x, dtype_of<T>(), y.length, op, "x");
    T* py = y.as<T>();
    const T* px = x.as<T>();
    const T al = T(alpha);
    parallel_for(y.length, kGrain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) py[i] += al * px[i];
    });
  });
  return info.Env().Undefined();
}

// sumTo(out, g, shape[], stridesOut[]): out (zeroed here) accumulates g, where g has `shape` (contiguous) and
// out is addressed with stridesOut (0 on reduced dims). Reduction of a broadcast gradient to an operand.
// Parallel over the output when the reduction is over leading dims (the usual bias/row case), else serial.
Napi::Value SumTo(const Napi::CallbackInfo& info) {
  const char* op = "sumTo";
  Arr out = arr_at(info, 0, op), g = arr_at(info, 1, op);
  Napi::Array shapeArr = info[2].As<Napi::Array>();
  const int nd = static_cast<int>(shapeArr.Length());
  if (nd > kMaxDims) throw Napi::RangeError::New(info.Env(), "sumTo: more than 8 dimensions");
  int64_t shape[kMaxDims], so[kMaxDims];
  read_dims(info, 2, nd, shape, op);
  read_dims(info, 3, nd, so, op);
  int64_t n = 1;
  for (int d = 0; d < nd; d++) n *= shape[d];
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, g, dtype_of<T>(), n, op, "g");
    T* o = out.as<T>();
    const T* pg = g.as<T>();
    std::memset(o, 0, sizeof(T) * out.length);
    if (n == 0) return;
    // Fast path: out is the trailing block of size c (strides contiguous over the last k dims, 0 before).
    int k = nd;
    while (k > 0 && so[k - 1] != 0) k--;
    bool trailing = true;
    int64_t c = 1;
    for (int d = nd - 1; d >= k; d--) {
      if (so[d] != c) trailing = false;
      c *= shape[d];
    }
    for (int d = 0; d < k; d++)
      if (so[d] != 0) trailing = false;
    if (trailing) {
      const int64_t rows = n / c;
      parallel_for(c, 64, [&](int64_t j0, int64_t j1) {
        for (int64_t r = 0; r < rows; r++) {
          const T* gr = pg + r * c;
          for (int64_t j = j0; j < j1; j++) o[j] += gr[j];
        }
      });
      return;
    }
    int64_t idx[kMaxDims] = {0};
    for (int64_t i = 0; i < n; i++) {
      int64_t rem = i, off = 0;
      for (int d = nd - 1; d >= 0; d--) {
        idx[d] = rem % shape[d];
        rem /= shape[d];
        off += idx[d] * so[d];
      }
      o[off] += pg[i];
    }
  });
  return info.Env().Undefined();
}

}  // namespace

MACLM_EXPORT(binary, Binary);
MACLM_EXPORT(affine, Affine);
MACLM_EXPORT(axpy, Axpy);
MACLM_EXPORT(sumTo, SumTo);

}  // namespace maclm

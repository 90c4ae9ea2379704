// Layout copies, for any dtype: general permutation (up to 8-D) and a strided 2-D block copy (slice, concat and their backward).
//
//   permute:    x with shape in[0..nd) (contiguous) -> out with shape in[perm[0]], ..., in[perm[nd-1]], i.e.
//               out[i0, ..., i(nd-1)] = x[j] where j has index i_d in input dim perm[d].
//               Size-1 dims are dropped and out dims that stay adjacent in x are merged first, so (B, T, NH, HS) ->
//               (B, NH, T, HS) becomes a copy of contiguous HS-runs, and a (batched) transpose of the last two
//               dims becomes 32x32-tiled 2-D transposes. Parallel over runs or over (batch item, tile row).
//   copy_block: dst[r * dstStride + dstOff + k] = src[r * srcStride + srcOff + k], r < rows, k < len:
//               a slice along an axis is rows = outer, len = m * inner; concat writes each input at its offset.
#include <algorithm>
#include <cstring>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"

namespace maclm {
namespace {

constexpr int kMaxDims = 8;
constexpr int64_t kGrain = 1 << 14;
constexpr int64_t kTile = 32;

template <typename T>
void permute_copy(T* out, const T* x, int nd, const int64_t* in_shape, const int64_t* perm) {
  int64_t in_stride[kMaxDims];
  int64_t acc = 1;
  for (int d = nd - 1; d >= 0; d--) {
    in_stride[d] = acc;
    acc *= in_shape[d];
  }
  const int64_t total = acc;
  if (total == 0) return;
  // Out dims with their strides in x, minus size-1 dims, then merging out dims d, d+1 that are adjacent in x.
  int64_t sh[kMaxDims], st[kMaxDims];
  int k = 0;
  for (int d = 0; d < nd; d++) {
    const int64_t s = in_shape[perm[d]];
    if (s == 1) continue;
    const int64_t str = in_stride[perm[d]];
    if (k > 0 && st[k - 1] == str * s) {
      sh[k - 1] *= s;
      st[k - 1] = str;
    } else {
      sh[k] = s;
      st[k] = str;
      k++;
    }
  }
  if (k <= 1) {  // identity (up to size-1 dims)
    std::memcpy(out, x, sizeof(T) * total);
    return;
  }
  int64_t out_stride[kMaxDims];
  acc = 1;
  for (int d = k - 1; d >= 0; d--) {
    out_stride[d] = acc;
    acc *= sh[d];
  }
  const int L = k - 1;
  if (st[L] == 1) {
    // The innermost out dim is contiguous in x: copy runs.
    const int64_t run = sh[L], rows = total / run;
    parallel_for(rows, std::max<int64_t>(1, kGrain / run), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        int64_t rem = r, off = 0;
        for (int d = L - 1; d >= 0; d--) {
          off += (rem % sh[d]) * st[d];
          rem /= sh[d];
        }
        std::memcpy(out + r * run, x + off, sizeof(T) * run);
      }
    });
    return;
  }
  // Tiled: out dim J is x's innermost (stride 1), out dim L is strided in x. Work items are (combination of
  // the other dims, block of kTile indices along J).
  int J = 0;
  for (int d = 0; d < k; d++)
    if (st[d] == 1) J = d;
  const int64_t nJ = sh[J], nL = sh[L], sL = st[L], oJ = out_stride[J];
  const int64_t combos = total / (nJ * nL);
  const int64_t jblocks = (nJ + kTile - 1) / kTile;
  parallel_for(combos * jblocks, std::max<int64_t>(1, kGrain / (kTile * nL)), [&](int64_t i0, int64_t i1) {
    for (int64_t it = i0; it < i1; it++) {
      const int64_t c = it / jblocks, j0 = (it % jblocks) * kTile, j1 = std::min(nJ, j0 + kTile);
      int64_t rem = c, xoff = 0, ooff = 0;
      for (int d = L - 1; d >= 0; d--) {
        if (d == J) continue;
        const int64_t i = rem % sh[d];
        rem /= sh[d];
        xoff += i * st[d];
        ooff += i * out_stride[d];
      }
      for (int64_t l0 = 0; l0 < nL; l0 += kTile) {
        const int64_t l1 = std::min(nL, l0 + kTile);
        for (int64_t j = j0; j < j1; j++) {
          T* o = out + ooff + j * oJ;
          const T* xs = x + xoff + j;
          for (int64_t l = l0; l < l1; l++) o[l] = xs[l * sL];
        }
      }
    }
  });
}

template <typename T>
void copy_block(T* dst, const T* src, int64_t rows, int64_t len, int64_t dst_stride, int64_t dst_off,
                int64_t src_stride, int64_t src_off) {
  if (len == 0) return;
  parallel_for(rows, std::max<int64_t>(1, kGrain / len), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
      std::memcpy(dst + r * dst_stride + dst_off, src + r * src_stride + src_off, sizeof(T) * len);
  });
}

// permute(out, x, inShape[], perm[])
Napi::Value Permute(const Napi::CallbackInfo& info) {
  const char* op = "permute";
  Arr out = arr_at(info, 0, op), x = arr_at(info, 1, op);
  Napi::Array shapeArr = info[2].As<Napi::Array>(), permArr = info[3].As<Napi::Array>();
  const int nd = static_cast<int>(shapeArr.Length());
  if (nd > kMaxDims || static_cast<int>(permArr.Length()) != nd)
    throw Napi::RangeError::New(info.Env(), "permute: bad rank or permutation length");
  int64_t shape[kMaxDims], perm[kMaxDims];
  bool seen[kMaxDims] = {false};
  int64_t n = 1;
  for (int d = 0; d < nd; d++) {
    shape[d] = shapeArr.Get(d).As<Napi::Number>().Int64Value();
    perm[d] = permArr.Get(d).As<Napi::Number>().Int64Value();
    if (shape[d] < 0 || perm[d] < 0 || perm[d] >= nd || seen[perm[d]])
      throw Napi::RangeError::New(info.Env(), "permute: bad shape or permutation");
    seen[perm[d]] = true;
    n *= shape[d];
  }
  auto run = [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, out.dtype, n, op, "out");
    expect(info, x, out.dtype, n, op, "x");
    permute_copy<T>(out.as<T>(), x.as<T>(), nd, shape, perm);
  };
  switch (out.dtype) {
    case DType::F32: run(float{}); break;
    case DType::F64: run(double{}); break;
    case DType::I32: run(int32_t{}); break;
    case DType::U8: run(uint8_t{}); break;
  }
  return info.Env().Undefined();
}

// copyBlock(dst, src, rows, len, dstStride, dstOff, srcStride, srcOff). Any dtype (bytes are copied).
Napi::Value CopyBlock(const Napi::CallbackInfo& info) {
  const char* op = "copyBlock";
  Arr dst = arr_at(info, 0, op), src = arr_at(info, 1, op);
  const int64_t rows = int_at(info, 2, op), len = int_at(info, 3, op), ds = int_at(info, 4, op), doff = int_at(info, 5, op),
                ss = int_at(info, 6, op), soff = int_at(info, 7, op);
  if (rows < 0 || len < 0 || ds < 0 || doff < 0 || ss < 0 || soff < 0)
    throw Napi::RangeError::New(info.Env(), "copyBlock: negative argument");
  if (rows == 0 || len == 0) return info.Env().Undefined();
  auto run = [&](auto zero) {
    using T = decltype(zero);
    expect(info, dst, dst.dtype, (rows - 1) * ds + doff + len, op, "dst");
    expect(info, src, dst.dtype, (rows - 1) * ss + soff + len, op, "src");
    copy_block<T>(dst.as<T>(), src.as<T>(), rows, len, ds, doff, ss, soff);
  };
  switch (dst.dtype) {
    case DType::F32: run(float{}); break;
    case DType::F64: run(double{}); break;
    case DType::I32: run(int32_t{}); break;
    case DType::U8: run(uint8_t{}); break;
  }
  return info.Env().Undefined();
}

}  // namespace

MACLM_EXPORT(permute, Permute);
MACLM_EXPORT(copyBlock, CopyBlock);

}  // namespace maclm

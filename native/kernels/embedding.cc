// Row gather and row scatter-add: the embedding lookup and its gradient (also indexSelect along axis 0).
//
//   embedding_forward:  out (N, C) = table[ids[n], :]            ids (N) int32, table (V, C)
//   embedding_backward: dtable (V, C) (zeroed first unless accumulate)
//                         dtable[v, :] += sum over n with ids[n] = v of g[n, :]      g (N, C)
//
// Both check every id against [0, V) before touching memory and report the first bad position (forward returns
// it, backward throws), so a bad token id never reads or writes out of bounds.
//
// Backward is thread-safe and deterministic: work items are (vocabulary range) x (column block of C); each item
// owns its block of dtable and walks all N ids in order, adding only the ids that fall in its range. No two
// threads touch the same element, and every element sums its contributions in order of n, whatever the
// thread count.
#include <algorithm>
#include <cstring>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"

namespace maclm {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per thread below which work runs inline
constexpr int64_t kColBlock = 64;    // columns per backward work item

// Position of the first id outside [0, V), or -1.
int64_t first_bad_id(const int32_t* ids, int64_t n, int64_t V) {
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= V) return i;
  return -1;
}

template <typename T>
void embedding_forward(T* out, const int32_t* ids, const T* table, int64_t N, int64_t C) {
  parallel_for(N, std::max<int64_t>(1, kGrain / std::max<int64_t>(C, 1)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) std::memcpy(out + n * C, table + int64_t(ids[n]) * C, sizeof(T) * C);
  });
}

template <typename T>
void embedding_backward(T* dtable, const T* g, const int32_t* ids, int64_t N, int64_t V, int64_t C, bool accumulate) {
  if (!accumulate) {
    parallel_for(V, std::max<int64_t>(1, kGrain / std::max<int64_t>(C, 1)), [&](int64_t v0, int64_t v1) {
      std::memset(dtable + v0 * C, 0, sizeof(T) * (v1 - v0) * C);
    });
  }
  if (N == 0 || C == 0) return;
  const int64_t col_blocks = (C + kColBlock - 1) / kColBlock;
  // Enough vocabulary ranges that there are a few items per thread even when C is small.
  const int64_t want = 4 * int64_t(num_threads());
  const int64_t ranges = std::min<int64_t>(V, std::max<int64_t>(1, (want + col_blocks - 1) / col_blocks));
  const int64_t per_range = (V + ranges - 1) / ranges;
  const int64_t items = ranges * col_blocks;
  const int64_t work_per_item = std::max<int64_t>(1, N * std::min(C, kColBlock) / ranges + N);
  parallel_for(items, std::max<int64_t>(1, kGrain / work_per_item), [&](int64_t i0, int64_t i1) {
    for (int64_t it = i0; it < i1; it++) {
      const int64_t r = it / col_blocks, cb = it % col_blocks;
      const int64_t v0 = r * per_range, v1 = std::min(V, v0 + per_range);
      const int64_t c0 = cb * kColBlock, c1 = std::min(C, c0 + kColBlock);
      for (int64_t n = 0; n < N; n++) {
        const int64_t v = ids[n];
        if (v < v0 || v >= v1) continue;
        T* d = dtable + v * C;
        const T* gr = g + n * C;
        for (int64_t c = c0; c < c1; c++) d[c] += gr[c];
      }
    }
  });
}

// embeddingForward(out, ids, table, N, V, C) -> -1, or the position of the first id outside [0, V) (then
// nothing is written).
Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  const char* op = "embeddingForward";
  Arr out = arr_at(info, 0, op), ids = arr_at(info, 1, op), table = arr_at(info, 2, op);
  const int64_t N = int_at(info, 3, op), V = int_at(info, 4, op), C = int_at(info, 5, op);
  if (N < 0 || V < 0 || C < 0) throw Napi::RangeError::New(info.Env(), "embeddingForward: negative dims");
  expect(info, ids, DType::I32, N, op, "ids");
  const int64_t bad = first_bad_id(ids.as<int32_t>(), N, V);
  if (bad >= 0) return Napi::Number::New(info.Env(), double(bad));
  auto run = [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, out.dtype, N * C, op, "out");
    expect(info, table, out.dtype, V * C, op, "table");
    embedding_forward<T>(out.as<T>(), ids.as<int32_t>(), table.as<T>(), N, C);
  };
  switch (out.dtype) {  // any dtype: rows are copied (indexSelect also reorders int32 token ids)
    case DType::F32: run(float{}); break;
    case DType::F64: run(double{}); break;
    case DType::I32: run(int32_t{}); break;
    case DType::U8: run(uint8_t{}); break;
  }
  return Napi::Number::New(info.Env(), -1);
}

// embeddingBackward(dtable, g, ids, N, V, C, accumulate)
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* op = "embeddingBackward";
  Arr dtable = arr_at(info, 0, op), g = arr_at(info, 1, op), ids = arr_at(info, 2, op);
  const int64_t N = int_at(info, 3, op), V = int_at(info, 4, op), C = int_at(info, 5, op);
  const bool accumulate = bool_at(info, 6);
  if (N < 0 || V < 0 || C < 0) throw Napi::RangeError::New(info.Env(), "embeddingBackward: negative dims");
  expect(info, ids, DType::I32, N, op, "ids");
  const int64_t bad = first_bad_id(ids.as<int32_t>(), N, V);
  if (bad >= 0)
    throw Napi::RangeError::New(info.Env(), std::string(op) + ": id " + std::to_string(ids.as<int32_t>()[bad]) + " at position " +
                                                std::to_string(bad) + " is outside [0, " + std::to_string(V) + ")");
  dispatch_float(info, dtable, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, dtable, dtype_of<T>(), V * C, op, "dtable");
    expect(info, g, dtype_of<T>(), N * C, op, "g");
    embedding_backward<T>(dtable.as<T>(), g.as<T>(), ids.as<int32_t>(), N, V, C, accumulate);
  });
  return info.Env().Undefined();
}

}  // namespace

MACLM_EXPORT(embeddingForward, EmbeddingForward);
MACLM_EXPORT(embeddingBackward, EmbeddingBackward);

}  // namespace maclm

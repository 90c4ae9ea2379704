// Batched matrix multiply with optional transposes and bias:
//   out[i] = op(A[i]) · op(B[i]) (+ bias),  i in [0, batch)
//   op(A[i]): (M, K), op(B[i]): (K, N), out[i]: (M, N), bias: (N) added to every row.
// strideA/strideB are element strides between batch items; strideB = 0 shares one B across the batch (a weight),
// in which case a non-transposed A is folded into a single (batch·M, K) GEMM. Many small GEMMs (attention heads)
// run in parallel over the batch with single-threaded BLAS; large ones use BLAS's own threads.
#include <algorithm>

#include "core/args.h"
#include "core/gemm.h"
#include "core/registry.h"
#include "core/threadpool.h"

namespace maclm {
namespace {

template <typename T>
void matmul_forward(T* out, const T* A, const T* B, const T* bias, int64_t batch, int64_t M, int64_t N, int64_t K,
                    bool tA, bool tB, int64_t strideA, int64_t strideB, T beta) {
  const int64_t lda = tA ? M : K, ldb = tB ? K : N;
  auto init_bias = [&](T* C, int64_t rows) {
    for (int64_t r = 0; r < rows; r++) std::copy(bias, bias + N, C + r * N);
  };
  if (strideB == 0 && !tA && strideA == M * K) {
    // One GEMM over all rows of all batch items.
    if (bias) init_bias(out, batch * M);
    gemm<T>(false, tB, batch * M, N, K, T(1), A, lda, B, ldb, bias ? T(1) : beta, out, N);
    return;
  }
  const double flops = 2.0 * double(M) * double(N) * double(K);
  if (batch > 1 && flops < 4e6 * 8) {
    GemmSingleThreaded single;
    parallel_for(batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; i++) {
        T* C = out + i * M * N;
        if (bias) init_bias(C, M);
        gemm<T>(tA, tB, M, N, K, T(1), A + i * strideA, lda, B + i * strideB, ldb, bias ? T(1) : beta, C, N);
      }
    });
    return;
  }
  for (int64_t i = 0; i < batch; i++) {
    T* C = out + i * M * N;
    if (bias) init_bias(C, M);
    gemm<T>(tA, tB, M, N, K, T(1), A + i * strideA, lda, B + i * strideB, ldb, bias ? T(1) : beta, C, N);
  }
}

// matmul(out, a, b, bias|null, batch, M, N, K, transA, transB, strideA, strideB, accumulate)
//   accumulate: out += result instead of out = result (used for gradient accumulation of shared weights).
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const char* op = "matmul";
  Arr out = arr_at(info, 0, op), a = arr_at(info, 1, op), b = arr_at(info, 2, op), bias = arr_at(info, 3, op, true);
  const int64_t batch = int_at(info, 4, op), M = int_at(info, 5, op), N = int_at(info, 6, op), K = int_at(info, 7, op);
  const bool tA = bool_at(info, 8), tB = bool_at(info, 9);
  const int64_t sA = int_at(info, 10, op), sB = int_at(info, 11, op);
  const bool accumulate = bool_at(info, 12);
  dispatch_float(info, out, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, out, dtype_of<T>(), batch * M * N, op, "out");
    expect(info, a, dtype_of<T>(), (batch - 1) * sA + M * K, op, "a");
    expect(info, b, dtype_of<T>(), (batch - 1) * sB + K * N, op, "b");
    if (bias.present) expect(info, bias, dtype_of<T>(), N, op, "bias");
    if (accumulate && bias.present) throw Napi::Error::New(info.Env(), "matmul: accumulate with bias is not supported");
    matmul_forward<T>(out.as<T>(), a.as<T>(), b.as<T>(), bias.present ? bias.as<T>() : nullptr, batch, M, N, K, tA, tB, sA,
                      sB, accumulate ? T(1) : T(0));
  });
  return info.Env().Undefined();
}

}  // namespace

MACLM_EXPORT(matmul, Matmul);

}  // namespace maclm

#include "core/gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/args.h"
#include "core/registry.h"
#include "core/threadpool.h"

#ifdef MACLM_USE_CBLAS
#include <cblas.h>
#endif

namespace maclm {

// ---- portable kernel -------------------------------------------------------------------------------------
// Packs op(B) into a contiguous (K, N) panel, then for each block of rows of C accumulates C[i,:] += a[i,k] *
// B[k,:] with the inner loop over N contiguous (which the compiler vectorises). Rows are split across threads
// unless called from inside a parallel region.
template <typename T>
void gemm_builtin(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  std::vector<T> Bp;
  const T* Bk = B;
  int64_t ldbk = ldb;
  if (transB) {
    Bp.resize(static_cast<size_t>(K * N));
    for (int64_t n = 0; n < N; n++)
      for (int64_t k = 0; k < K; k++) Bp[k * N + n] = B[n * ldb + k];
    Bk = Bp.data();
    ldbk = N;
  }
  parallel_for(M, 4, [&](int64_t m0, int64_t m1) {
    std::vector<T> acc(static_cast<size_t>(N));
    for (int64_t i = m0; i < m1; i++) {
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t k = 0; k < K; k++) {
        const T a = transA ? A[k * lda + i] : A[i * lda + k];
        if (a == T(0)) continue;
        const T* b = Bk + k * ldbk;
        T* c = acc.data();
        for (int64_t n = 0; n < N; n++) c[n] += a * b[n];
      }
      T* c = C + i * ldc;
      if (beta == T(0))
        for (int64_t n = 0; n < N; n++) c[n] = alpha * acc[n];
      else
        for (int64_t n = 0; n < N; n++) c[n] = alpha * acc[n] + beta * c[n];
    }
  });
}

template void gemm_builtin<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                  int64_t, float, float*, int64_t);
template void gemm_builtin<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                   const double*, int64_t, double, double*, int64_t);

// ---- dispatch --------------------------------------------------------------------------------------------
#ifdef MACLM_USE_CBLAS
// A product with one row (M = 1) or one column (N = 1) is a matrix-vector product: sgemm would pack the whole
// matrix operand first (twice the memory traffic, for decoding one token), so these go to gemv.
template <typename T, typename Gemv>
bool gemm_as_gemv(Gemv gemv, bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                  int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M != 1 && N != 1) return false;
  if (M == 1) {
    // c (1, N) = alpha · a (1, K) · op(B) + beta · c; a's elements are lda apart when transposed.
    if (beta == T(0)) std::fill(C, C + N, T(0));
    gemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, transB ? (int)N : (int)K, transB ? (int)K : (int)N,
         alpha, B, (int)ldb, A, transA ? (int)lda : 1, beta == T(0) ? T(1) : beta, C, 1);
  } else {
    // c (M, 1), stride ldc = alpha · op(A) · b (K, 1) + beta · c; b's elements are ldb apart unless transposed.
    for (int64_t i = 0; beta == T(0) && i < M; i++) C[i * ldc] = T(0);
    gemv(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transA ? (int)K : (int)M, transA ? (int)M : (int)K,
         alpha, A, (int)lda, B, transB ? 1 : (int)ldb, beta == T(0) ? T(1) : beta, C, (int)ldc);
  }
  return true;
}
#endif

template <>
void gemm<float>(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
#ifdef MACLM_USE_CBLAS
  if (K > 0 && gemm_as_gemv<float>(cblas_sgemv, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, (int)M, (int)N,
              (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#else
  gemm_builtin<float>(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

template <>
void gemm<double>(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                  int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
#ifdef MACLM_USE_CBLAS
  if (K > 0 && gemm_as_gemv<double>(cblas_dgemv, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, (int)M, (int)N,
              (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#else
  gemm_builtin<double>(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

#ifdef MACLM_USE_CBLAS
GemmSingleThreaded::GemmSingleThreaded() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
GemmSingleThreaded::~GemmSingleThreaded() { openblas_set_num_threads(saved_); }
const char* gemm_backend() { return "openblas"; }
#else
GemmSingleThreaded::GemmSingleThreaded() : saved_(1) {}
GemmSingleThreaded::~GemmSingleThreaded() {}
const char* gemm_backend() { return "builtin"; }
#endif

namespace {

// gemm(C, A, B, transA, transB, M, N, K, alpha, beta, builtin): the raw GEMM on typed arrays with packed
// strides, for the benchmark and the fallback's parity test. Matmul ops use matmul.cc.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const char* op = "gemm";
  Arr C = arr_at(info, 0, op), A = arr_at(info, 1, op), B = arr_at(info, 2, op);
  const bool tA = bool_at(info, 3), tB = bool_at(info, 4);
  const int64_t M = int_at(info, 5, op), N = int_at(info, 6, op), K = int_at(info, 7, op);
  const double alpha = num_at(info, 8, op), beta = num_at(info, 9, op);
  const bool builtin = bool_at(info, 10);
  dispatch_float(info, C, op, [&](auto zero) {
    using T = decltype(zero);
    expect(info, C, dtype_of<T>(), M * N, op, "C");
    expect(info, A, dtype_of<T>(), M * K, op, "A");
    expect(info, B, dtype_of<T>(), K * N, op, "B");
    const int64_t lda = tA ? M : K, ldb = tB ? K : N;
    if (builtin)
      gemm_builtin<T>(tA, tB, M, N, K, T(alpha), A.as<T>(), lda, B.as<T>(), ldb, T(beta), C.as<T>(), N);
    else
      gemm<T>(tA, tB, M, N, K, T(alpha), A.as<T>(), lda, B.as<T>(), ldb, T(beta), C.as<T>(), N);
  });
  return info.Env().Undefined();
}

Napi::Value GemmBackend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), gemm_backend()); }

}  // namespace

MACLM_EXPORT(gemm, Gemm);
MACLM_EXPORT(gemmBackend, GemmBackend);

}  // namespace maclm

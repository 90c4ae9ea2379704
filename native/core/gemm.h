// General matrix multiply, row-major: C = alpha * op(A) * op(B) + beta * C, with op(X) = X or X^T.
//   op(A): (M, K), op(B): (K, N), C: (M, N); lda/ldb/ldc are row strides in elements.
// Backed by OpenBLAS (cblas_sgemm/dgemm) when built with MACLM_USE_CBLAS, else by gemm_builtin, a portable
// blocked kernel that is also the reference the tests compare against.
#pragma once
#include <cstdint>

namespace maclm {

template <typename T>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc);

template <typename T>
void gemm_builtin(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Within its lifetime, gemm() runs single-threaded: for kernels that call many small GEMMs from inside
// parallel_for (attention per head), where BLAS threads would only contend with ours.
class GemmSingleThreaded {
 public:
  GemmSingleThreaded();
  ~GemmSingleThreaded();
  GemmSingleThreaded(const GemmSingleThreaded&) = delete;
  GemmSingleThreaded& operator=(const GemmSingleThreaded&) = delete;

 private:
  int saved_;
};

// "openblas" or "builtin": what the build linked.
const char* gemm_backend();

}  // namespace maclm

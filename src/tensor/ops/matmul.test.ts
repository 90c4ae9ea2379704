import { describe, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { linear, matmul, native, scope, Tensor } from "../index.js";
import { randn } from "../random.js";
import { refMatmul } from "../reference/basic.js";

describe("matmul", () => {
  for (const [tA, tB] of [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ] as const) {
    it(`batched product matches the reference (transA=${tA}, transB=${tB})`, () =>
      scope(() => {
        const [B, M, N, K] = [3, 5, 7, 4];
        for (const dtype of ["float32", "float64"] as const) {
          const a = randn(tA ? [B, K, M] : [B, M, K], { seed: 1, dtype });
          const b = randn(tB ? [B, N, K] : [B, K, N], { seed: 2, dtype });
          const c = matmul(a, b, { transA: tA, transB: tB });
          for (let i = 0; i < B; i++) {
            const ref = refMatmul(
              a.data.subarray(i * M * K, (i + 1) * M * K),
              b.data.subarray(i * K * N, (i + 1) * K * N),
              M,
              N,
              K,
              tA,
              tB,
            );
            expectClose(c.data.subarray(i * M * N, (i + 1) * M * N), ref, {
              rtol: dtype === "float32" ? 1e-5 : 1e-12,
              atol: 1e-6,
            });
          }
        }
      }));

    it(`backward matches finite differences (transA=${tA}, transB=${tB}), batched and with a shared 2-D operand`, () =>
      scope(() => {
        const [B, M, N, K] = [2, 3, 4, 5];
        const a = randn(tA ? [B, K, M] : [B, M, K], { seed: 3, dtype: "float64" }).requireGrad();
        const b = randn(tB ? [B, N, K] : [B, K, N], { seed: 4, dtype: "float64" }).requireGrad();
        gradCheck((x, y) => matmul(x, y, { transA: tA, transB: tB }), [a, b]);
        if (!tA) {
          const w = randn(tB ? [N, K] : [K, N], { seed: 5, dtype: "float64" }).requireGrad();
          gradCheck((x, y) => matmul(x, y, { transA: tA, transB: tB }), [a, w]);
        }
      }));
  }

  it("linear (torch layout, with bias) forward and backward", () =>
    scope(() => {
      const x = randn([2, 3, 6], { seed: 6, dtype: "float64" }).requireGrad();
      const w = randn([4, 6], { seed: 7, dtype: "float64" }).requireGrad();
      const b = randn([4], { seed: 8, dtype: "float64" }).requireGrad();
      const y = linear(x, w, b);
      const ref = refMatmul(x.data, w.data, 6, 4, 6, false, true).map((v, i) => v + b.data[i % 4]!);
      expectClose(y.data, ref, { rtol: 1e-12 });
      gradCheck(linear, [x, w, b]);
    }));

  it("the portable GEMM agrees with BLAS on a large product", () =>
    scope(() => {
      const [M, N, K] = [67, 129, 255];
      const a = randn([M, K], { seed: 9 });
      const b = randn([K, N], { seed: 10 });
      const c1 = Tensor.empty([M, N]);
      const c2 = Tensor.empty([M, N]);
      native.gemm(c1.f32, a.f32, b.f32, false, false, M, N, K, 1, 0, false);
      native.gemm(c2.f32, a.f32, b.f32, false, false, M, N, K, 1, 0, true);
      expectClose(c2.data, c1.data, { rtol: 1e-4, atol: 1e-4 });
      expectClose(c1.data, refMatmul(a.data, b.data, M, N, K), { rtol: 1e-4, atol: 1e-4 });
    }));
});

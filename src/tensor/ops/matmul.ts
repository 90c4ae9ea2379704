/**
 * Matrix products.
 *   matmul(a, b, {transA, transB}):  a (..., M, K) · b (..., K, N) -> (..., M, N); b may be 2-D (shared by the
 *                                    batch). With transA, a is (..., K, M); with transB, b is (..., N, K).
 *   linear(x, w, bias):              x (..., in) · w^T + bias, w (out, in) as torch.nn.Linear -> (..., out).
 *
 * Backward, for C = op(A)·op(B) with G = dC:
 *   C = A B     : dA = G B^T,     dB = A^T G
 *   C = A B^T   : dA = G B,       dB = G^T A
 *   C = A^T B   : dA = B G^T,     dB = A G
 *   C = A^T B^T : dA = B^T G^T,   dB = G^T A^T
 */
import { ShapeError, fmtShape } from "../../errors.js";
import { record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { native } from "../native.js";
import { Tensor, numel } from "../tensor.js";
import { reduceTo } from "./elementwise.js";

export interface MatmulArgs {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  /** Elements between batch items of a and b; 0 shares the operand across the batch. */
  strideA: number;
  strideB: number;
  /** out += product instead of out = product. */
  accumulate: boolean;
}

declare module "../backend.js" {
  interface Kernels {
    matmul(out: Tensor, a: Tensor, b: Tensor, bias: Tensor | null, args: MatmulArgs): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    matmul(
      out: unknown,
      a: unknown,
      b: unknown,
      bias: unknown,
      batch: number,
      m: number,
      n: number,
      k: number,
      transA: boolean,
      transB: boolean,
      strideA: number,
      strideB: number,
      accumulate: boolean,
    ): void;
  }
}

registerKernels("cpu", {
  matmul(out, a, b, bias, x) {
    native.matmul(
      out.data,
      a.data,
      b.data,
      bias?.data ?? null,
      x.batch,
      x.m,
      x.n,
      x.k,
      x.transA,
      x.transB,
      x.strideA,
      x.strideB,
      x.accumulate,
    );
  },
});

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/** The raw product without autograd; `a` batched over leading dims, `b` batched likewise or 2-D. */
function product(
  op: string,
  a: Tensor,
  b: Tensor,
  transA: boolean,
  transB: boolean,
  bias: Tensor | null = null,
): Tensor {
  if (a.dtype !== b.dtype) throw new ShapeError(op, `dtype mismatch: ${a.dtype} vs ${b.dtype}`);
  if (a.ndim < 2 || b.ndim < 2)
    throw new ShapeError(op, `operands must be at least 2-D, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const [ar, ac] = [a.dim(-2), a.dim(-1)];
  const [br, bc] = [b.dim(-2), b.dim(-1)];
  const [m, k] = transA ? [ac, ar] : [ar, ac];
  const [kb, n] = transB ? [bc, br] : [br, bc];
  if (k !== kb)
    throw new ShapeError(
      op,
      `inner dims differ: a ${fmtShape(a.shape)}${transA ? "ᵀ" : ""} vs b ${fmtShape(b.shape)}${transB ? "ᵀ" : ""}`,
    );
  const batchShape = a.shape.slice(0, -2);
  const batch = numel(batchShape);
  const bBatch = numel(b.shape.slice(0, -2));
  if (b.ndim > 2 && (b.ndim !== a.ndim || b.shape.slice(0, -2).some((d, i) => d !== batchShape[i])))
    throw new ShapeError(op, `batch dims differ: a ${fmtShape(a.shape)} vs b ${fmtShape(b.shape)}`);
  if (bias && (bias.ndim !== 1 || bias.size !== n))
    throw new ShapeError(op, `bias ${fmtShape(bias.shape)} does not match ${n} outputs`);
  const out = Tensor.uninit([...batchShape, m, n], a.dtype, a.device);
  kernels(a.device).matmul(out, a, b, bias, {
    batch,
    m,
    n,
    k,
    transA,
    transB,
    strideA: m * k,
    strideB: bBatch === 1 ? 0 : k * n,
    accumulate: false,
  });
  return out;
}

export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const tA = opts.transA ?? false;
  const tB = opts.transB ?? false;
  const out = product("matmul", a, b, tA, tB);
  return record(out, "matmul", [a, b], (g, needs) => {
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) da = tA ? product("matmul.backward", b, g, tB, true) : product("matmul.backward", g, b, false, !tB);
    if (needs[1]) {
      if (b.ndim === 2 && a.ndim > 2) {
        // Shared b: fold the batch into rows, one GEMM. a2: (batch·M, K) or for transA handled per item below.
        const a2 = a.reshapeView([-1, a.dim(-1)]);
        const g2 = g.reshapeView([-1, g.dim(-1)]);
        if (!tA)
          db = tB ? product("matmul.backward", g2, a2, true, false) : product("matmul.backward", a2, g2, true, false);
        else {
          const per = tB
            ? product("matmul.backward", g, a, true, true)
            : product("matmul.backward", a, g, false, false);
          db = reduceTo(per, b.shape);
        }
      } else db = tB ? product("matmul.backward", g, a, true, tA) : product("matmul.backward", a, g, !tA, false);
    }
    return [da, db];
  });
}

/** y = x · wᵀ + bias, with w (out, in) — torch.nn.Linear's layout. */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  if (w.ndim !== 2) throw new ShapeError("linear", `weight must be 2-D (out, in), got ${fmtShape(w.shape)}`);
  if (x.dim(-1) !== w.dim(1))
    throw new ShapeError(
      "linear",
      `input ${fmtShape(x.shape)} has ${x.dim(-1)} features, weight ${fmtShape(w.shape)} expects ${w.dim(1)}`,
    );
  const x2 = x.ndim === 2 ? x : x.reshapeView([-1, x.dim(-1)]);
  const y2 = product("linear", x2, w, false, true, bias);
  const y = x.ndim === 2 ? y2 : y2.reshapeView([...x.shape.slice(0, -1), w.dim(0)]);
  if (y !== y2) y2.dispose();
  const inputs = bias ? [x, w, bias] : [x, w];
  return record(y, "linear", inputs, (g, needs) => {
    const g2 = g.reshapeView([-1, g.dim(-1)]); // (rows, out)
    const dx = needs[0] ? product("linear.backward", g2, w, false, false).reshapeView(x.shape) : null; // (rows, in)
    const dw = needs[1] ? product("linear.backward", g2, x2, true, false) : null; // (out, in)
    const db = bias && needs[2] ? reduceTo(g2, bias.shape) : null;
    return [dx, dw, db];
  });
}

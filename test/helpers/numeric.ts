/**
 * Numeric test helpers: closeness with a readable failure (first mismatches, max errors), and gradient checks
 * of autograd against central finite differences in float64.
 */
import { expect } from "vitest";
import { Tensor, grad, scope } from "../../src/tensor/index.js";
import { Rng } from "../../src/tensor/random.js";

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/** Asserts |a - e| <= atol + rtol·|e| elementwise; the failure message lists the worst elements. */
export function expectClose(
  actualIn: number | ArrayLike<number>,
  expectedIn: number | ArrayLike<number>,
  tol: Tolerance = {},
  label = "",
): void {
  // A bare number is a one-element array (a number's .length is undefined: it would compare nothing).
  const actual = typeof actualIn === "number" ? [actualIn] : actualIn;
  const expected = typeof expectedIn === "number" ? [expectedIn] : expectedIn;
  const rtol = tol.rtol ?? 1e-5;
  const atol = tol.atol ?? 1e-6;
  expect(actual.length, `${label} length`).toBe(expected.length);
  let worst = -1;
  let worstExcess = 0;
  let maxAbs = 0;
  let bad = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const err = Math.abs(a - e);
    maxAbs = Math.max(maxAbs, err);
    const allowed = atol + rtol * Math.abs(e);
    if (!(err <= allowed) || Number.isNaN(a) !== Number.isNaN(e)) {
      bad++;
      const excess = Number.isNaN(err) ? Infinity : err / allowed;
      if (excess > worstExcess) {
        worstExcess = excess;
        worst = i;
      }
    }
  }
  if (bad > 0) {
    const msg =
      `${label}: ${bad}/${actual.length} elements differ (max abs err ${maxAbs.toExponential(3)}); ` +
      `worst at ${worst}: got ${actual[worst]}, expected ${expected[worst]}; ` +
      `first values got [${Array.from(actual).slice(0, 5).join(", ")}] expected [${Array.from(expected).slice(0, 5).join(", ")}]`;
    expect.fail(msg);
  }
}

export interface GradCheckOptions {
  eps?: number;
  rtol?: number;
  atol?: number;
  /** Check at most this many elements per input (chosen at random) to keep big inputs fast. */
  maxElements?: number;
  seed?: number;
}

/**
 * Checks d/dx of L = sum(f(xs) ⊙ R) (R fixed random) for every input that requires grad, autograd against
 * central differences. Inputs should be float64.
 */
export function gradCheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradCheckOptions = {}): void {
  const eps = opts.eps ?? 1e-6;
  const rng = new Rng(opts.seed ?? 1234);
  const probe = scope(() => f(...inputs).shape);
  const R = Float64Array.from({ length: probe.reduce((a, b) => a * b, 1) }, () => rng.normal());
  const lossOf = (): number =>
    scope(() => {
      const y = f(...inputs).data;
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i]! * R[i]!;
      return s;
    });
  const params = inputs.filter((x) => x.requiresGrad);
  const analytic = scope(() => {
    const y = f(...inputs);
    const gOut = Tensor.from(R, y.shape, y.dtype);
    return grad(y, params, { gradOutput: gOut }).map((g) => Float64Array.from(g.data));
  });
  params.forEach((x, pi) => {
    const d = x.data;
    const n = d.length;
    const idx =
      n <= (opts.maxElements ?? 64)
        ? [...Array(n).keys()]
        : rng.shuffle([...Array(n).keys()]).slice(0, opts.maxElements ?? 64);
    const numeric: number[] = [];
    const got: number[] = [];
    for (const i of idx) {
      const orig = d[i]!;
      d[i] = orig + eps;
      const lp = lossOf();
      d[i] = orig - eps;
      const lm = lossOf();
      d[i] = orig;
      numeric.push((lp - lm) / (2 * eps));
      got.push(analytic[pi]![i]!);
    }
    expectClose(
      got,
      numeric,
      { rtol: opts.rtol ?? 1e-5, atol: opts.atol ?? 1e-7 },
      `gradient of input ${pi} ${x.toString()}`,
    );
  });
}

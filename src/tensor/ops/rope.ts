/**
 * Rotary position embedding, Hugging Face Llama convention (rotate_half):
 *   rope(x (B, T, NH, HS), {positionOffset = 0 | positions (B, T) int32, theta = 10000, rotaryDim = HS})
 * Within the first rotaryDim (rd) entries of each head, entry i pairs with i + rd/2 and the pair turns by
 * angle = pos · invFreq[i], invFreq[i] = theta^(−2i/rd):
 *   out[i] = x[i]·cos − x[i + rd/2]·sin,   out[i + rd/2] = x[i + rd/2]·cos + x[i]·sin;  entries rd..HS pass through.
 * Angles are computed the way HF does in float32 (invFreq and pos·invFreq rounded to float32, then cos/sin), so
 * a converted Llama sees the same rotations. The position of (b, t) is positions[b, t], else positionOffset + t
 * (e.g. question tokens placed after a MAC prefix; prefix keys passed as pastK are not rotated here).
 * Backward is the rotation by −angle.
 *
 * cos/sin tables (float64, (npos, rd/2)) are cached per (theta, rd) for positions [0, 8192); positions outside
 * that range get a table for just the range the call uses.
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { isFloat } from "../dtype.js";
import { native } from "../native.js";
import { Tensor } from "../tensor.js";

/** cos/sin of the rotation angles for positions base .. base + npos − 1, each row rd/2 entries. */
export interface RopeTable {
  cos: Float64Array;
  sin: Float64Array;
  base: number;
  npos: number;
  rotaryDim: number;
}

export interface RopeArgs {
  B: number;
  T: number;
  NH: number;
  HS: number;
  rotaryDim: number;
  /** Position of (b, t) when positions is null: offset + t. */
  offset: number;
}

declare module "../backend.js" {
  interface Kernels {
    /** out = x rotated by +angle (forward) or −angle (backward); out may be x. */
    ropeForward(out: Tensor, x: Tensor, table: RopeTable, positions: Tensor | null, args: RopeArgs): void;
    ropeBackward(out: Tensor, x: Tensor, table: RopeTable, positions: Tensor | null, args: RopeArgs): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    ropeForward(
      out: unknown,
      x: unknown,
      cos: Float64Array,
      sin: Float64Array,
      positions: unknown,
      offset: number,
      base: number,
      B: number,
      T: number,
      NH: number,
      HS: number,
      rotaryDim: number,
    ): void;
    ropeBackward(
      out: unknown,
      x: unknown,
      cos: Float64Array,
      sin: Float64Array,
      positions: unknown,
      offset: number,
      base: number,
      B: number,
      T: number,
      NH: number,
      HS: number,
      rotaryDim: number,
    ): void;
  }
}

registerKernels("cpu", {
  ropeForward(out, x, tb, pos, a) {
    native.ropeForward(
      out.data,
      x.data,
      tb.cos,
      tb.sin,
      pos?.data ?? null,
      a.offset,
      tb.base,
      a.B,
      a.T,
      a.NH,
      a.HS,
      a.rotaryDim,
    );
  },
  ropeBackward(out, x, tb, pos, a) {
    native.ropeBackward(
      out.data,
      x.data,
      tb.cos,
      tb.sin,
      pos?.data ?? null,
      a.offset,
      tb.base,
      a.B,
      a.T,
      a.NH,
      a.HS,
      a.rotaryDim,
    );
  },
});

/** Positions [0, CACHE_LIMIT) share one cached table per (theta, rotaryDim). */
const CACHE_LIMIT = 8192;
const cache = new Map<string, RopeTable>();

/** The table for positions [lo, hi] (inclusive), angles as HF computes them in float32. */
export function ropeTable(theta: number, rotaryDim: number, lo: number, hi: number): RopeTable {
  const half = rotaryDim / 2;
  const invFreq = Array.from({ length: half }, (_, i) =>
    Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / rotaryDim)))),
  );
  const npos = Math.max(0, hi - lo + 1);
  const cos = new Float64Array(npos * half);
  const sin = new Float64Array(npos * half);
  for (let p = 0; p < npos; p++)
    for (let i = 0; i < half; i++) {
      const ang = Math.fround((lo + p) * invFreq[i]!);
      cos[p * half + i] = Math.cos(ang);
      sin[p * half + i] = Math.sin(ang);
    }
  return { cos, sin, base: lo, npos, rotaryDim };
}

function tableFor(theta: number, rotaryDim: number, lo: number, hi: number): RopeTable {
  if (lo < 0 || hi >= CACHE_LIMIT) return ropeTable(theta, rotaryDim, lo, hi);
  const key = `${theta}/${rotaryDim}`;
  const have = cache.get(key);
  if (have && have.npos > hi) return have;
  let n = Math.max(256, have?.npos ?? 0);
  while (n <= hi) n *= 2;
  const t = ropeTable(theta, rotaryDim, 0, Math.min(n, CACHE_LIMIT) - 1);
  cache.set(key, t);
  return t;
}

export interface RopeOptions {
  /** Position of token t is positionOffset + t (default 0); ignored when `positions` is given. */
  positionOffset?: number;
  /** (B, T) int32 explicit positions. */
  positions?: Tensor | null;
  /** Base of the angle frequencies (default 10000). */
  theta?: number;
  /** Rotate only the first rotaryDim entries of each head (even, default HS). */
  rotaryDim?: number;
}

const OP = "rope";

/** Rotary position embedding of x (B, T, NH, HS); differentiable in x. */
export function rope(x: Tensor, opts: RopeOptions = {}): Tensor {
  if (x.ndim !== 4) throw new ShapeError(OP, `x must be (B, T, NH, HS), got ${fmtShape(x.shape)}`);
  if (!isFloat(x.dtype)) throw new ShapeError(OP, `x must be float32 or float64, got ${x.dtype}`);
  const [B, T, NH, HS] = x.shape as [number, number, number, number];
  const rotaryDim = opts.rotaryDim ?? HS;
  if (!Number.isInteger(rotaryDim) || rotaryDim <= 0 || rotaryDim % 2 !== 0 || rotaryDim > HS)
    throw new ShapeError(OP, `rotaryDim ${rotaryDim} must be even and in [2, HS = ${HS}] for x ${fmtShape(x.shape)}`);
  const theta = opts.theta ?? 10000;
  if (!(theta > 0) || !Number.isFinite(theta))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${OP}: theta must be a positive number, got ${theta}`);
  const positions = opts.positions ?? null;
  const offset = opts.positionOffset ?? 0;
  if (!Number.isInteger(offset))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${OP}: positionOffset must be an integer, got ${offset}`);
  let lo = offset;
  let hi = offset + T - 1;
  if (positions) {
    if (positions.dtype !== "int32") throw new ShapeError(OP, `positions must be int32, got ${positions.dtype}`);
    if (positions.ndim !== 2 || positions.dim(0) !== B || positions.dim(1) !== T)
      throw new ShapeError(
        OP,
        `positions ${fmtShape(positions.shape)} must be (B, T) = (${B}, ${T}) for x ${fmtShape(x.shape)}`,
      );
    const pd = positions.data;
    lo = Infinity;
    hi = -Infinity;
    for (let i = 0; i < pd.length; i++) {
      lo = Math.min(lo, pd[i]!);
      hi = Math.max(hi, pd[i]!);
    }
  }
  const out = Tensor.uninit(x.shape, x.dtype, x.device);
  if (x.size === 0) return out;
  const table = tableFor(theta, rotaryDim, lo, hi);
  const args: RopeArgs = { B, T, NH, HS, rotaryDim, offset };
  kernels(x.device).ropeForward(out, x, table, positions, args);
  return record(out, OP, [x], (g) => {
    const dx = Tensor.uninit(g.shape, g.dtype, g.device);
    kernels(g.device).ropeBackward(dx, g, table, positions, args);
    return [dx];
  });
}

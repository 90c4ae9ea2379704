/**
 * Seeded random numbers for initialisation and tests: sfc32 (a small, fast, well-mixed 32-bit generator)
 * seeded through splitmix32, normals by Box–Muller. Same seed → same tensors on every machine.
 */
import type { DType } from "./dtype.js";
import { type Shape, Tensor } from "./tensor.js";

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.u32() / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }
}

export interface RandomOptions {
  seed?: number;
  rng?: Rng;
  dtype?: DType;
}

const rngOf = (o: RandomOptions): Rng => o.rng ?? new Rng(o.seed ?? 0);

/** Normal(mean, std²) entries. */
export function randn(shape: Shape, opts: RandomOptions & { std?: number; mean?: number } = {}): Tensor {
  const rng = rngOf(opts);
  const t = Tensor.uninit(shape, opts.dtype ?? "float32");
  const d = t.data;
  const std = opts.std ?? 1;
  const mean = opts.mean ?? 0;
  for (let i = 0; i < d.length; i++) d[i] = mean + std * rng.normal();
  return t;
}

/** Uniform entries in [low, high). */
export function rand(shape: Shape, opts: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const rng = rngOf(opts);
  const t = Tensor.uninit(shape, opts.dtype ?? "float32");
  const d = t.data;
  const lo = opts.low ?? 0;
  const hi = opts.high ?? 1;
  for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * rng.uniform();
  return t;
}

/** Integers in [0, n) as int32 (token ids). */
export function randint(shape: Shape, n: number, opts: RandomOptions = {}): Tensor {
  const rng = rngOf(opts);
  const t = Tensor.uninit(shape, "int32");
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = rng.int(n);
  return t;
}

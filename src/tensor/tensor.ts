/**
 * Tensor: a contiguous, row-major block of native memory with a shape, a dtype and a device.
 *
 * Memory comes from the native allocator (see native/core/buffer.cc): `data` is a typed-array view of it, so
 * kernels and JS read the same bytes without copies. Reshapes share storage (reference-counted); dispose()
 * releases this tensor's reference and frees the memory when the last one goes.
 *
 * Autograd fields (`requiresGrad`, `node`) are set by ops; see autograd.ts.
 */
import { MacLmError, ShapeError, fmtShape } from "../errors.js";
import { type AnyTypedArray, type DType, bytesPerElement, dtypeOfArray, viewOf } from "./dtype.js";
import { native } from "./native.js";
import { track } from "./scope.js";
import type { GradNode } from "./autograd.js";

export type Device = "cpu" | (string & Record<never, never>);
export type Shape = readonly number[];

/** Shared native memory behind one or more tensors (a tensor and its reshaped views). */
class Storage {
  refs = 1;
  constructor(
    readonly buffer: ArrayBuffer,
    readonly device: Device,
  ) {}
  release(): void {
    if (--this.refs === 0) native.free(this.buffer);
  }
}

export const numel = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);

function checkShape(shape: Shape, op: string): void {
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(op, `invalid shape ${fmtShape(shape)}`);
}

export class Tensor {
  readonly isTensor = true;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly size: number;
  /** True for trainable parameters and for anything computed from them (outside noGrad()). */
  requiresGrad = false;
  /** The op that produced this tensor, when it is part of the autograd graph. */
  node: GradNode | null = null;
  /** Optional name, used in error messages and checkpoints. */
  name?: string;

  private storage: Storage | null;
  private view: AnyTypedArray | null;

  private constructor(storage: Storage, shape: Shape, dtype: DType) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = numel(shape);
    this.view = viewOf(dtype, storage.buffer, this.size);
    track(this);
  }

  // ---- construction ------------------------------------------------------------------------------------

  /** A zero-filled tensor (what Tensor.zeros gives; kept for the many callers that rely on the zeros). */
  static empty(shape: Shape, dtype: DType = "float32", device: Device = "cpu"): Tensor {
    return Tensor.alloc(shape, dtype, device, true, "empty");
  }

  /**
   * An uninitialised tensor, for outputs that a kernel overwrites completely (no zero-fill pass over the memory).
   * Its contents are unspecified until written: with MACLM_POISON_UNINIT=1 (and under AddressSanitizer) every
   * byte is 0xFF (NaN floats, -1 integers), so an output that is not fully written shows up in tests. Never use it
   * for buffers that are accumulated into (scatter-add, gradient sums).
   */
  static uninit(shape: Shape, dtype: DType = "float32", device: Device = "cpu"): Tensor {
    return Tensor.alloc(shape, dtype, device, false, "uninit");
  }

  private static alloc(shape: Shape, dtype: DType, device: Device, zero: boolean, op: string): Tensor {
    checkShape(shape, op);
    if (device !== "cpu") throw new MacLmError("MACLM_NO_KERNEL", `device ${device} has no allocator registered`);
    const buffer = native.alloc(numel(shape) * bytesPerElement[dtype], zero);
    return new Tensor(new Storage(buffer, device), shape, dtype);
  }

  static zeros(shape: Shape, dtype: DType = "float32"): Tensor {
    return Tensor.empty(shape, dtype); // native alloc zero-fills
  }

  static full(shape: Shape, value: number, dtype: DType = "float32"): Tensor {
    const t = Tensor.uninit(shape, dtype);
    t.data.fill(value);
    return t;
  }

  /** Copies `values` (a typed array or nested/flat numbers) into a new tensor of `shape`. */
  static from(values: ArrayLike<number> | AnyTypedArray, shape?: Shape, dtype?: DType): Tensor {
    const dt: DType = dtype ?? (ArrayBuffer.isView(values) ? dtypeOfArray(values as AnyTypedArray) : "float32");
    const sh = shape ?? [values.length];
    if (numel(sh) !== values.length)
      throw new ShapeError("Tensor.from", `${values.length} values do not fill shape ${fmtShape(sh)}`);
    const t = Tensor.uninit(sh, dt);
    t.data.set(values as ArrayLike<number>);
    return t;
  }

  static scalar(value: number, dtype: DType = "float32"): Tensor {
    return Tensor.from([value], [], dtype);
  }

  // ---- access ------------------------------------------------------------------------------------------

  get device(): Device {
    return this.storage?.device ?? "cpu";
  }

  get disposed(): boolean {
    return this.view === null;
  }

  /** The elements, as a typed-array view of native memory (no copy). */
  get data(): AnyTypedArray {
    if (this.view === null)
      throw new MacLmError(
        "MACLM_DISPOSED",
        `tensor${this.name ? ` ${this.name}` : ""} ${fmtShape(this.shape)} was disposed`,
      );
    return this.view;
  }

  /** The data as Float32Array; throws if the dtype differs. */
  get f32(): Float32Array {
    if (this.dtype !== "float32")
      throw new MacLmError("MACLM_DTYPE_MISMATCH", `expected a float32 tensor, got ${this.dtype}`);
    return this.data as Float32Array;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /** Size of dimension `i` (negative counts from the end). */
  dim(i: number): number {
    const d = this.shape[i < 0 ? this.shape.length + i : i];
    if (d === undefined) throw new ShapeError("dim", `no dimension ${i} in shape ${fmtShape(this.shape)}`);
    return d;
  }

  item(): number {
    if (this.size !== 1) throw new ShapeError("item", `tensor of shape ${fmtShape(this.shape)} is not a single value`);
    return this.data[0]!;
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  /**
   * A tensor sharing this one's memory with another shape of the same size (-1 infers one dim). Not recorded by
   * autograd: for kernels and backward functions. Model code uses the differentiable reshape() op.
   */
  reshapeView(shape: Shape): Tensor {
    const sh = [...shape];
    const inferred = sh.indexOf(-1);
    if (inferred >= 0) {
      const rest = sh.reduce((a, b, i) => (i === inferred ? a : a * b), 1);
      sh[inferred] = rest === 0 ? 0 : this.size / rest;
    }
    checkShape(sh, "reshape");
    if (numel(sh) !== this.size)
      throw new ShapeError(
        "reshape",
        `cannot view ${fmtShape(this.shape)} (${this.size} elements) as ${fmtShape(shape)}`,
      );
    const storage = this.storage;
    if (storage === null || this.view === null) throw new MacLmError("MACLM_DISPOSED", "reshape of a disposed tensor");
    storage.refs++;
    return new Tensor(storage, sh, this.dtype);
  }

  /** Copy with the same shape, dtype and values, outside the autograd graph. */
  clone(): Tensor {
    const t = Tensor.uninit(this.shape, this.dtype, this.device);
    t.data.set(this.data);
    return t;
  }

  /** Copy converted to another dtype. */
  to(dtype: DType): Tensor {
    if (dtype === this.dtype) return this.clone();
    const t = Tensor.uninit(this.shape, dtype, this.device);
    t.data.set(this.data);
    return t;
  }

  /** Marks this tensor as a trainable leaf (gradients are computed for it). */
  requireGrad(flag = true): this {
    if (this.node !== null)
      throw new MacLmError("MACLM_AUTOGRAD", "requireGrad() is for leaf tensors; use detach() first");
    this.requiresGrad = flag;
    return this;
  }

  /** Releases this tensor's reference to its memory. Idempotent. */
  dispose(): void {
    if (this.view === null) return;
    this.view = null;
    this.node = null;
    const s = this.storage;
    this.storage = null;
    s?.release();
  }

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }
}

/** Bytes and blocks of native tensor memory currently allocated (for leak tests and benchmarks). */
export const liveNativeMemory = (): { bytes: number; blocks: number } => native.liveBytes();

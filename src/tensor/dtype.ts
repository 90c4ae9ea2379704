/** Element types. float32 is the working type; float64 exists for gradient checks; int32 holds token ids. */
export type DType = "float32" | "float64" | "int32" | "uint8";
export type FloatDType = "float32" | "float64";

export type TypedArrayOf<D extends DType> = D extends "float32"
  ? Float32Array
  : D extends "float64"
    ? Float64Array
    : D extends "int32"
      ? Int32Array
      : Uint8Array;

export type AnyTypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;

export const bytesPerElement: Record<DType, number> = { float32: 4, float64: 8, int32: 4, uint8: 1 };

export function viewOf(dtype: DType, buffer: ArrayBuffer, length: number): AnyTypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(buffer, 0, length);
    case "float64":
      return new Float64Array(buffer, 0, length);
    case "int32":
      return new Int32Array(buffer, 0, length);
    case "uint8":
      return new Uint8Array(buffer, 0, length);
  }
}

export function dtypeOfArray(a: AnyTypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int32Array) return "int32";
  return "uint8";
}

export const isFloat = (d: DType): d is FloatDType => d === "float32" || d === "float64";

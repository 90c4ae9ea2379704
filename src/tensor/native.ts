/**
 * Loads the native addon (build/Release/mac_lm.node, built by node-gyp at `npm install`). MACLM_NATIVE_PATH
 * points at another build (the sanitizer build, or a helper's private build).
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { MacLmError } from "../errors.js";

type F32 = Float32Array;
type Floats = Float32Array | Float64Array;

/** The raw native functions. Shapes are checked in TypeScript before these are called. */
export interface NativeAddon {
  /** Native memory: zero-filled, or uninitialised with zero = false (poisoned with 0xFF in checking builds). */
  alloc(bytes: number, zero?: boolean): ArrayBuffer;
  free(buffer: ArrayBuffer): void;
  liveBytes(): { bytes: number; blocks: number; cachedBytes: number };
  trimAllocCache(): void;
  mallocTrim(): boolean;
  numThreads(): number;
  setNumThreads(n: number): void;
  gemmBackend(): "openblas" | "builtin";
  gemm(
    c: Floats,
    a: Floats,
    b: Floats,
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    beta: number,
    builtin: boolean,
  ): void;
  // Each op module adds the native functions it calls by augmenting this interface (see ops/elementwise.ts).
}

export type { F32, Floats };

function findAddon(): string {
  const override = process.env.MACLM_NATIVE_PATH;
  if (override) return resolve(override);
  // src/tensor/native.ts and dist/tensor/native.js are both two levels below the package root.
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
  for (const cfg of ["Release", "Debug"]) {
    const p = join(root, "build", cfg, "mac_lm.node");
    if (existsSync(p)) return p;
  }
  throw new MacLmError(
    "MACLM_NATIVE_MISSING",
    `mac-lm's native addon is not built (looked for build/Release/mac_lm.node under ${root}); run \`npm run build:native\``,
  );
}

const require = createRequire(import.meta.url);
export const native = require(findAddon()) as NativeAddon;

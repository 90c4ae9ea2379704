/**
 * Uninitialised allocation (Tensor.uninit: kernel outputs that are overwritten completely, without a zero-fill
 * pass). A child process runs ops and the decoder models forward and backward with MACLM_POISON_UNINIT=1 (every
 * uninitialised byte 0xFF: NaN) and without: the results must be finite and identical, so no kernel leaves part
 * of an uninitialised output unwritten. Tensor.zeros / Tensor.empty stay zero-filled, also on reused blocks.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { Tensor, liveNativeMemory, scope } from "../../src/tensor/index.js";

function runChild(poison: boolean): Record<string, [number, number, boolean]> {
  const env = { ...process.env };
  if (poison) env.MACLM_POISON_UNINIT = "1";
  else delete env.MACLM_POISON_UNINIT;
  const r = spawnSync(process.execPath, ["--import", "tsx", "test/engine/uninit-child.ts"], { env, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`uninit-child exited with ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, [number, number, boolean]>;
}

describe("Tensor.uninit", () => {
  it("has the shape and dtype, counts as live native memory, and is freed by dispose()", () => {
    const before = liveNativeMemory();
    const t = Tensor.uninit([3, 1000], "float64");
    expect([t.shape, t.dtype, t.data.length]).toEqual([[3, 1000], "float64", 3000]);
    t.data.fill(2);
    expect(t.data[2999]).toBe(2);
    expect(liveNativeMemory().blocks).toBe(before.blocks + 1);
    t.dispose();
    expect(liveNativeMemory()).toMatchObject({ bytes: before.bytes, blocks: before.blocks });
  });

  it("zeros() and empty() are zero-filled even on a reused, dirtied large block", () =>
    scope(() => {
      for (const make of [(n: number) => Tensor.zeros([n]), (n: number) => Tensor.empty([n])]) {
        const n = 1 << 18; // 1 MiB: a large block, cached when freed
        const dirty = Tensor.uninit([n]);
        dirty.data.fill(7);
        dirty.dispose();
        const z = make(n);
        expect(z.data.every((v) => v === 0)).toBe(true);
        z.dispose();
      }
    }));

  it("every op overwrites its uninitialised output completely (poisoned run = normal run)", () => {
    const normal = runChild(false);
    const poisoned = runChild(true);
    expect(poisoned.poisoned![2], "MACLM_POISON_UNINIT=1 poisons uninitialised memory").toBe(true);
    expect(normal.poisoned![2], "without it, fresh memory is not NaN").toBe(false);
    const names = Object.keys(normal).filter((k) => k !== "poisoned");
    expect(names.length).toBeGreaterThan(40);
    for (const k of names) {
      expect(normal[k]![2], `${k} is finite`).toBe(true);
      expect(poisoned[k], k).toEqual(normal[k]);
    }
  }, 60_000);
});

import { describe, expect, it } from "vitest";
import { F16_MAX, decodeF16, encodeF16, f16BitsToF32, f32ToF16Bits } from "./f16.js";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** The float32 neighbours of float32 value x (x > 0). */
function nextUp(x: number): number {
  f32[0] = x;
  u32[0] = u32[0]! + 1;
  return f32[0];
}
function nextDown(x: number): number {
  f32[0] = x;
  u32[0] = u32[0]! - 1;
  return f32[0];
}

describe("float16 conversion", () => {
  it("hand-checked values (round to nearest, ties to even)", () => {
    const cases: [number, number][] = [
      [0, 0],
      [1, 1],
      [-2, -2],
      [1 + 2 ** -11, 1], // tie between 1 (even) and 1 + 2^-10 (odd)
      [1 + 3 * 2 ** -11, 1 + 2 ** -9], // tie between 1 + 2^-10 (odd) and 1 + 2^-9 (even)
      [1 + 2 ** -11 + 2 ** -20, 1 + 2 ** -10], // just above the tie
      [0.1, 0.0999755859375],
      [65504, 65504],
      [65519, 65504],
      [65520, Infinity], // tie between 65504 and 2^16 (even: overflows)
      [-1e6, -Infinity],
      [2 ** -24, 2 ** -24], // smallest subnormal
      [2 ** -25, 0], // tie between 0 (even) and 2^-24
      [3 * 2 ** -25, 2 ** -23], // tie between 1 and 2 subnormal units
      [2 ** -26, 0],
      [2 ** -14 - 2 ** -25, 2 ** -14], // tie at the top of the subnormals carries into the smallest normal
      [Infinity, Infinity],
    ];
    for (const [x, want] of cases) expect(f16BitsToF32(f32ToF16Bits(x)), `f16(${x})`).toBe(want);
    expect(Object.is(f16BitsToF32(f32ToF16Bits(-0)), -0)).toBe(true);
    expect(Object.is(f16BitsToF32(f32ToF16Bits(-(2 ** -30))), -0)).toBe(true);
    expect(f16BitsToF32(f32ToF16Bits(NaN))).toBeNaN();
    expect(f32ToF16Bits(F16_MAX)).toBe(0x7bff);
  });

  it("every rounding boundary between adjacent halves, both signs", () => {
    // For each pair of adjacent finite halves (a, b): the midpoint goes to the even one, its float32 neighbours
    // to the nearer one. Covers subnormals, normals and the step to Infinity.
    let checked = 0;
    for (let h = 0; h < 0x7c00; h++) {
      const a = f16BitsToF32(h);
      const b = h + 1 === 0x7c00 ? 65536 : f16BitsToF32(h + 1);
      const mid = (a + b) / 2; // exact in float32
      const even = (h & 1) === 0 ? h : h + 1;
      for (const sign of [0, 0x8000]) {
        const s = sign ? -1 : 1;
        if (f32ToF16Bits(s * a) !== (h | sign)) expect.fail(`f16(${s * a}) != ${h | sign}`);
        if (f32ToF16Bits(s * mid) !== (even | sign))
          expect.fail(`midpoint ${s * mid}: ${f32ToF16Bits(s * mid)} != ${even | sign}`);
        if (f32ToF16Bits(s * nextUp(mid)) !== ((h + 1) | sign)) expect.fail(`above midpoint ${s * mid}`);
        if (mid > 0 && f32ToF16Bits(s * nextDown(mid)) !== (h | sign)) expect.fail(`below midpoint ${s * mid}`);
        checked++;
      }
    }
    expect(checked).toBe(2 * 0x7c00);
  });

  it("decode is exact and encode(decode(h)) = h for every non-NaN half", () => {
    for (let h = 0; h < 65536; h++) {
      const exp = (h >> 10) & 31;
      const frac = h & 1023;
      if (exp === 31 && frac !== 0) {
        expect(f16BitsToF32(h)).toBeNaN();
        continue;
      }
      const v = f16BitsToF32(h);
      const want =
        (h & 0x8000 ? -1 : 1) *
        (exp === 0 ? frac * 2 ** -24 : exp === 31 ? Infinity : (1 + frac / 1024) * 2 ** (exp - 15));
      if (!Object.is(v, want)) expect.fail(`decode ${h}: ${v} != ${want}`);
      if (f32ToF16Bits(v) !== h) expect.fail(`encode(decode(${h})) = ${f32ToF16Bits(v)}`);
    }
  });

  it("array helpers", () => {
    const src = Float32Array.from([1, -0.5, 0.1, 70000]);
    const h = new Uint16Array(4);
    encodeF16(src, h);
    const back = new Float32Array(4);
    decodeF16(h, back);
    expect(Array.from(back)).toEqual([1, -0.5, 0.0999755859375, Infinity]);
  });
});
